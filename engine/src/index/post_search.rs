//! The live index as a retrieval batch's [`PostSearch`]: each search
//! loads the latest snapshot once and searches it, its sealed segments on
//! the reader's device when it has one (`IndexReader::on_device`), the
//! rest on the CPU (the retriever is not needed).

use crate::corpus::{Hit, PostSearch, Query};
use crate::error::Result;
use crate::model::retriever::PhoenixRetriever;

use super::live_index::IndexReader;

impl PostSearch for IndexReader {
    fn len(&self) -> usize {
        self.snapshot().len()
    }

    fn search(
        &self,
        _retriever: &PhoenixRetriever,
        reps: &[f32],
        queries: &[Query<'_>],
    ) -> Result<Vec<Vec<Hit>>> {
        Ok(self.search_latest(reps, queries)?)
    }
}
