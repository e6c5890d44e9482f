//! `sluice query` over an `s3://` lake on moto: the same files, the same answers, the same pruning.

use sluice_query::QuerySession;

use crate::query::{COUNTRY_SQL, QTY_BY_SKU_SQL, counts};
use crate::support;

#[tokio::test]
async fn queries_an_s3_lake_on_moto() {
    let Some(sdk_config) = sluice_testkit::moto::moto().await else {
        return;
    };
    let Some(endpoint) = sluice_testkit::moto::moto_endpoint() else {
        return;
    };
    let bucket = sluice_testkit::moto::unique_name("lake");
    let s3 =
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&sdk_config).force_path_style(true).build());
    s3.create_bucket().bucket(&bucket).send().await.unwrap();

    let lake = sluice_testkit::moto::open_lake(&format!("s3://{bucket}/team/lake"), endpoint).unwrap();
    let registry = support::registry();
    let prefix = "team/lake/";
    let expected =
        support::write_lake(lake.store().as_ref(), prefix, &registry, &support::standard_files(&registry)).await;

    let lake = QuerySession::open(&lake, &registry).await.unwrap();
    assert_eq!(counts(&lake.run(COUNTRY_SQL).await.unwrap()), expected.page_view_by_country);
    let by_type = counts(&lake.run("SELECT event_type, count(*) FROM events GROUP BY 1").await.unwrap());
    assert_eq!(by_type.len(), registry.event_types().len());
    assert_eq!(counts(&lake.run(QTY_BY_SKU_SQL).await.unwrap()), expected.qty_by_sku);

    let sql = "SELECT event_id FROM page_view WHERE dt = '2024-03-02' AND hour = '23'";
    let mut want: Vec<String> = expected.files_by_partition[&("page_view".into(), "2024-03-02".into(), "23".into())]
        .iter()
        .map(|f| format!("{prefix}{f}"))
        .collect();
    want.sort();
    assert_eq!(lake.files_to_scan(sql).await.unwrap(), want);
    let rows: usize = lake.run(sql).await.unwrap().iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows as i64, expected.rows_by_partition[&("page_view".into(), "2024-03-02".into(), "23".into())]);
}
