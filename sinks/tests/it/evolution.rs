//! Schema evolution: files written when only v1 existed stay readable next to v2 files.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, new_null_array};
use arrow::datatypes::Schema;
use sluice_dlq::MemoryDeadLetters;
use sluice_lake::Lake;
use sluice_sinks::LakeWriter;
use sluice_stream::kinesis_input::KinesisBatch;

use crate::support;

#[tokio::test]
async fn v1_files_stay_readable_next_to_v2_files() {
    let lake = Lake::open("memory://", &Default::default()).unwrap();
    let all = support::events(12, 400);
    let page_views: Vec<_> = all.iter().filter(|e| e.event_type == "page_view").cloned().collect();
    let v1: Vec<_> = page_views.iter().filter(|e| e.schema_version == 1).cloned().collect();
    let v2: Vec<_> = page_views.iter().filter(|e| e.schema_version == 2).cloned().collect();
    assert!(!v1.is_empty() && !v2.is_empty());

    // Before v2 existed: the v1 writer has no app_version column.
    let old = LakeWriter::new(Arc::new(support::v1_registry()), lake.clone(), MemoryDeadLetters::new());
    old.process(&KinesisBatch::from(&support::batch(&v1, 0)), support::now()).await;
    let new = LakeWriter::new(support::registry(), lake.clone(), MemoryDeadLetters::new());
    new.process(&KinesisBatch::from(&support::batch(&v2, 10_000)), support::now()).await;

    let (ids, files) = support::read_lake(&lake).await;
    assert_eq!(ids.len(), v1.len() + v2.len());
    let schemas: Vec<Schema> = files.iter().map(|(_, b)| b[0].schema().as_ref().clone()).collect();
    assert!(schemas.iter().any(|s| s.field_with_name("app_version").is_err()));
    assert!(schemas.iter().any(|s| s.field_with_name("app_version").is_ok()));

    // Merging the file schemas gives the latest table schema (app_version nullable).
    let merged = Schema::try_merge(schemas).unwrap();
    let latest = support::registry().get("page_view").unwrap().arrow_schema();
    let mut merged_names: Vec<&str> = merged.fields().iter().map(|f| f.name().as_str()).collect();
    let mut latest_names: Vec<&str> = latest.fields().iter().map(|f| f.name().as_str()).collect();
    merged_names.sort_unstable();
    latest_names.sort_unstable();
    assert_eq!(merged_names, latest_names);
    assert!(merged.field_with_name("app_version").unwrap().is_nullable());

    // Every file projects onto the latest schema (missing columns null), as query engines do.
    let mut app_versions = 0;
    for (_, batches) in &files {
        for batch in batches {
            let projected = project(batch, &latest);
            let column = projected.column_by_name("app_version").unwrap().as_string::<i32>();
            app_versions += column.len() - column.null_count();
        }
    }
    assert_eq!(app_versions, v2.len());
}

fn project(batch: &RecordBatch, schema: &arrow::datatypes::SchemaRef) -> RecordBatch {
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            batch.column_by_name(field.name()).cloned().unwrap_or_else(|| {
                assert!(field.is_nullable(), "{} added without being nullable", field.name());
                new_null_array(field.data_type(), batch.num_rows())
            })
        })
        .collect();
    RecordBatch::try_new(schema.clone(), columns).unwrap()
}
