//! The live index as a retrieval batch's [`PostSearch`]: each search
//! loads the latest snapshot once and scans it (the retriever is not
//! needed: the index scans on the CPU whatever the model's device).

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
        Ok(self.snapshot().search(reps, queries)?)
    }
}
