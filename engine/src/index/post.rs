//! A post as a writer hands it to the index: ids, creation time and its
//! candidate-tower representation.

use crate::corpus::CorpusItem;

use super::error::IndexError;

/// One post to insert.
#[derive(Debug, Clone, Copy)]
pub struct NewPost<'a> {
    /// The post and its author.
    pub item: CorpusItem,
    /// Creation time, epoch milliseconds (the retention window counts from it).
    pub created_ms: i64,
    /// `[D]` representation, every value finite.
    pub representation: &'a [f32],
}

impl NewPost<'_> {
    /// Checks the width and that every value is finite.
    pub fn validate(&self, dim: usize) -> Result<(), IndexError> {
        let post_id = self.item.post_id;
        if self.representation.len() != dim {
            return Err(IndexError::RepresentationWidth {
                post_id,
                len: self.representation.len(),
                dim,
            });
        }
        match self.representation.iter().position(|v| !v.is_finite()) {
            Some(position) => Err(IndexError::NonFinite { post_id, position }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_post_and_the_bad_value() {
        let item = CorpusItem {
            post_id: 7,
            author_id: 1,
        };
        let p = NewPost {
            item,
            created_ms: 0,
            representation: &[0.0, f32::INFINITY],
        };
        assert_eq!(
            p.validate(2).expect_err("inf").to_string(),
            "post 7 has a non-finite representation value at 1"
        );
        assert_eq!(
            p.validate(3).expect_err("width").to_string(),
            "post 7 has a representation of 2 values, expected 3"
        );
    }
}
