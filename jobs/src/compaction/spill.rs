//! Sorted runs spilled to the lake's scratch prefix and merged back in order: how a partition
//! larger than the memory budget is compacted without holding it whole.
//!
//! A run is an Arrow IPC stream of rows sorted by one [`Order`], written in one PUT and read back
//! batch by batch as its bytes arrive ([`RunReader`]), so a merge of `k` runs holds about `k`
//! batches, never a run.

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::compute::interleave_record_batch;
use arrow::error::ArrowError;
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamWriter;
use arrow::row::Rows;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use sluice_lake::{Lake, LakeError};

use super::rows::{Order, RowsError, keys};

/// Why a spill or merge failed.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("spilled run: {0}")]
    Arrow(#[from] ArrowError),
    #[error(transparent)]
    Rows(#[from] RowsError),
}

/// `batch` as one run's bytes (an Arrow IPC stream).
pub fn encode_run(batch: &RecordBatch) -> Result<Bytes, ArrowError> {
    let mut out = Vec::with_capacity(batch.get_array_memory_size() + 1024);
    let mut writer = StreamWriter::try_new(&mut out, &batch.schema())?;
    // Batches of a bounded size, so a reader holds little of a run at a time.
    let step = MERGE_BATCH_ROWS.max(1);
    let mut offset = 0;
    while offset < batch.num_rows() {
        let len = step.min(batch.num_rows() - offset);
        writer.write(&batch.slice(offset, len))?;
        offset += len;
    }
    writer.finish()?;
    drop(writer);
    Ok(Bytes::from(out))
}

/// Rows per batch a run is written in and a merge emits.
pub const MERGE_BATCH_ROWS: usize = 4096;

/// A run read back batch by batch as its bytes arrive.
pub struct RunReader {
    chunks: BoxStream<'static, Result<Bytes, LakeError>>,
    buffer: Buffer,
    decoder: StreamDecoder,
    done: bool,
}

impl RunReader {
    /// Opens the run at `path` (lake-relative).
    pub async fn open(lake: &Lake, path: &str) -> Result<Self, SpillError> {
        Ok(Self {
            chunks: lake.get_stream(path).await?,
            buffer: Buffer::from(Vec::<u8>::new()),
            decoder: StreamDecoder::new(),
            done: false,
        })
    }

    /// The next batch, `None` at the end of the run.
    pub async fn next(&mut self) -> Result<Option<RecordBatch>, SpillError> {
        loop {
            if !self.buffer.is_empty() {
                if let Some(batch) = self.decoder.decode(&mut self.buffer)? {
                    return Ok(Some(batch));
                }
                continue;
            }
            if self.done {
                return Ok(None);
            }
            match self.chunks.next().await {
                Some(chunk) => self.buffer = Buffer::from(chunk?),
                None => {
                    self.done = true;
                    self.decoder.finish()?;
                }
            }
        }
    }
}

/// One run's position in a merge: its current batch, that batch's keys, the next row.
struct Cursor {
    reader: RunReader,
    batch: RecordBatch,
    keys: Rows,
    row: usize,
}

/// The sorted runs at `paths` merged into one stream in `order` ([`Merge::next`]: batches of at
/// most [`MERGE_BATCH_ROWS`] rows; of equal keys, the lower run's first). Holds one batch per
/// run; the heap orders the runs by their current rows' keys in place (no copy per row).
pub struct Merge {
    cursors: Vec<Cursor>,
    /// Indexes of the cursors with rows left, a binary min-heap by [`Merge::less`].
    heap: Vec<usize>,
    /// (cursor, row) of the rows taken since the last batch, from the cursors' current batches.
    pending: Vec<(usize, usize)>,
    order: Order,
}

impl Merge {
    /// Opens every run and reads its first batch.
    pub async fn open(lake: &Lake, paths: &[String], order: Order) -> Result<Self, SpillError> {
        let mut merge = Merge {
            cursors: Vec::with_capacity(paths.len()),
            heap: Vec::with_capacity(paths.len()),
            pending: Vec::with_capacity(MERGE_BATCH_ROWS),
            order,
        };
        for path in paths {
            let mut reader = RunReader::open(lake, path).await?;
            // An empty run takes no part.
            let Some(batch) = next_non_empty(&mut reader).await? else { continue };
            let keys = keys(&batch, order)?;
            merge.cursors.push(Cursor { reader, batch, keys, row: 0 });
            merge.heap.push(merge.cursors.len() - 1);
            merge.sift_up(merge.heap.len() - 1);
        }
        Ok(merge)
    }

    /// The next rows in order, `None` when every run is used up.
    pub async fn next(&mut self) -> Result<Option<RecordBatch>, SpillError> {
        loop {
            let Some(&c) = self.heap.first() else { return self.take_pending() };
            self.pending.push((c, self.cursors[c].row));
            self.cursors[c].row += 1;
            if self.cursors[c].row < self.cursors[c].batch.num_rows() {
                self.sift_down(0);
                if self.pending.len() >= MERGE_BATCH_ROWS {
                    return self.take_pending();
                }
                continue;
            }
            // `c`'s batch is used up: take what refers to it before replacing it.
            let taken = self.take_pending()?;
            match next_non_empty(&mut self.cursors[c].reader).await? {
                Some(batch) => {
                    let keys = keys(&batch, self.order)?;
                    let cursor = &mut self.cursors[c];
                    (cursor.batch, cursor.keys, cursor.row) = (batch, keys, 0);
                }
                None => {
                    self.heap.swap_remove(0);
                }
            }
            if !self.heap.is_empty() {
                self.sift_down(0);
            }
            if taken.is_some() {
                return Ok(taken);
            }
        }
    }

    /// Whether cursor `a`'s current row comes before cursor `b`'s (ties: the lower run).
    fn less(&self, a: usize, b: usize) -> bool {
        let (x, y) = (&self.cursors[a], &self.cursors[b]);
        x.keys.row(x.row).cmp(&y.keys.row(y.row)).then(a.cmp(&b)).is_lt()
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.less(self.heap[i], self.heap[parent]) {
                return;
            }
            self.heap.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (left, right) = (2 * i + 1, 2 * i + 2);
            let mut smallest = i;
            if left < self.heap.len() && self.less(self.heap[left], self.heap[smallest]) {
                smallest = left;
            }
            if right < self.heap.len() && self.less(self.heap[right], self.heap[smallest]) {
                smallest = right;
            }
            if smallest == i {
                return;
            }
            self.heap.swap(i, smallest);
            i = smallest;
        }
    }

    /// The pending rows as one batch (`None` if there are none).
    fn take_pending(&mut self) -> Result<Option<RecordBatch>, SpillError> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        // Pending rows name cursors, so there is at least one batch.
        let batches: Vec<&RecordBatch> = self.cursors.iter().map(|c| &c.batch).collect();
        let batch = interleave_record_batch(&batches, &self.pending)?;
        self.pending.clear();
        Ok(Some(batch))
    }
}

async fn next_non_empty(reader: &mut RunReader) -> Result<Option<RecordBatch>, SpillError> {
    while let Some(batch) = reader.next().await? {
        if batch.num_rows() > 0 {
            return Ok(Some(batch));
        }
    }
    Ok(None)
}
