//! A released retrieval corpus (`sports_corpus.npz`, written by
//! `np.savez_compressed`): per post its id, author id, candidate-tower
//! representation and topic label. Checked on read: one row per post in every
//! array, finite representations.

use std::path::Path;

use super::error::{ArtifactError, Result};
use super::layout::check_finite;
use super::npz::NpzFile;

/// Array of post ids (int64 snowflakes).
pub const POST_IDS: &str = "post_ids";
/// Array of author ids (int64).
pub const AUTHOR_IDS: &str = "author_ids";
/// Array of representations, float32 `[N, D]`.
pub const REPRESENTATIONS: &str = "candidate_representations";
/// Array of topic labels, numpy unicode `[N]` (may be empty strings).
pub const TOPICS: &str = "topics";

/// The corpus, row `i` of every field describing post `i`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactCorpus {
    /// Post ids.
    pub post_ids: Vec<i64>,
    /// Author ids.
    pub author_ids: Vec<i64>,
    /// Representations `[N, dim]`, row-major.
    pub representations: Vec<f32>,
    /// D.
    pub dim: usize,
    /// Topic labels.
    pub topics: Vec<String>,
}

impl ArtifactCorpus {
    /// Reads and checks the corpus at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut npz = NpzFile::open(path)?;
        let post_ids = npz.i64(POST_IDS)?;
        let n = match post_ids.shape.as_slice() {
            [n] => *n,
            _ => return Err(shape_error(path, POST_IDS, &post_ids.shape, "1-d [N]")),
        };
        let author_ids = npz.i64(AUTHOR_IDS)?;
        if author_ids.shape != [n] {
            let expected = format!("[{n}], one per post in {POST_IDS}");
            return Err(shape_error(path, AUTHOR_IDS, &author_ids.shape, &expected));
        }
        let reps = npz.f32(REPRESENTATIONS)?;
        let dim = match reps.shape.as_slice() {
            [rows, dim] if *rows == n && *dim > 0 => *dim,
            _ => {
                let expected = format!("[{n}, D] with D > 0, one row per post in {POST_IDS}");
                return Err(shape_error(path, REPRESENTATIONS, &reps.shape, &expected));
            }
        };
        check_finite(path, REPRESENTATIONS, &reps.data)?;
        let topics = npz.strings(TOPICS)?;
        if topics.len() != n {
            let expected = format!("[{n}], one per post in {POST_IDS}");
            return Err(shape_error(path, TOPICS, &[topics.len()], &expected));
        }
        Ok(Self {
            post_ids: post_ids.data,
            author_ids: author_ids.data,
            representations: reps.data,
            dim,
            topics,
        })
    }

    /// Number of posts.
    pub fn len(&self) -> usize {
        self.post_ids.len()
    }

    /// Whether the corpus has no post.
    pub fn is_empty(&self) -> bool {
        self.post_ids.is_empty()
    }

    /// Representation of post `i`, or `None` out of range.
    pub fn representation(&self, i: usize) -> Option<&[f32]> {
        self.representations.get(i * self.dim..(i + 1) * self.dim)
    }
}

fn shape_error(path: &Path, name: &str, found: &[usize], expected: &str) -> ArtifactError {
    ArtifactError::Shape {
        path: path.to_path_buf(),
        name: name.to_string(),
        found: found.to_vec(),
        expected: expected.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::npz::test_npz::{npy_bytes, write_npz};
    use super::*;

    fn corpus_path() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/phoenix-v2/v2_artifacts/sports_corpus.npz")
    }

    #[test]
    fn sports_corpus_is_20000_posts_of_width_16() -> Result<()> {
        let c = ArtifactCorpus::open(corpus_path())?;
        assert_eq!(c.len(), 20000);
        assert_eq!(c.dim, 16);
        assert_eq!(c.representations.len(), 20000 * 16);
        assert_eq!(c.author_ids.len(), 20000);
        assert_eq!(c.topics.len(), 20000);
        // Snowflake post ids of 2026 are about 2.05e18.
        assert!(c.post_ids.iter().all(|&id| id > 2_000_000_000_000_000_000));
        Ok(())
    }

    #[test]
    fn corpus_rows_agree_with_expected_json() -> Result<()> {
        let c = ArtifactCorpus::open(corpus_path())?;
        let text = std::fs::read_to_string(corpus_path().with_file_name("expected.json"))
            .expect("expected.json");
        let expected: serde_json::Value = serde_json::from_str(&text).expect("json");
        let idx: Vec<usize> =
            serde_json::from_value(expected["retrieved_corpus_indices"].clone()).expect("indices");
        let posts: Vec<i64> =
            serde_json::from_value(expected["retrieved_post_ids"].clone()).expect("ids");
        let authors: Vec<i64> =
            serde_json::from_value(expected["retrieved_author_ids"].clone()).expect("ids");
        let topics: Vec<String> =
            serde_json::from_value(expected["retrieved_topics"].clone()).expect("topics");
        for (k, &i) in idx.iter().enumerate() {
            assert_eq!(c.post_ids[i], posts[k], "rank {k}");
            assert_eq!(c.author_ids[i], authors[k], "rank {k}");
            assert_eq!(c.topics[i], topics[k], "rank {k}");
        }
        Ok(())
    }

    fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        v.iter().flat_map(|&x| f(x)).collect()
    }

    /// A two-post corpus whose `author_ids` has `authors` entries and whose
    /// second representation value is `rep1`.
    fn tiny(path: &Path, authors: usize, rep1: f32) {
        let mut topic = Vec::new();
        for s in ["a", ""] {
            let mut chars: Vec<u32> = s.chars().map(u32::from).collect();
            chars.resize(1, 0);
            topic.extend(le(&chars, u32::to_le_bytes));
        }
        let authors_dict =
            format!("{{'descr': '<i8', 'fortran_order': False, 'shape': ({authors},), }}");
        let members = [
            (
                POST_IDS,
                npy_bytes(
                    "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }",
                    &le(&[1i64, 2], i64::to_le_bytes),
                ),
            ),
            (
                AUTHOR_IDS,
                npy_bytes(&authors_dict, &le(&vec![7i64; authors], i64::to_le_bytes)),
            ),
            (
                REPRESENTATIONS,
                npy_bytes(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }",
                    &le(&[0.5f32, rep1], f32::to_le_bytes),
                ),
            ),
            (
                TOPICS,
                npy_bytes(
                    "{'descr': '<U1', 'fortran_order': False, 'shape': (2,), }",
                    &topic,
                ),
            ),
        ];
        write_npz(path, &members);
    }

    #[test]
    fn tiny_corpus_reads_with_an_empty_topic() -> Result<()> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.npz");
        tiny(&path, 2, 0.25);
        let c = ArtifactCorpus::open(&path)?;
        assert_eq!(c.topics, vec!["a".to_string(), String::new()]);
        assert_eq!(c.representation(1), Some(&[0.25f32][..]));
        assert_eq!(c.representation(2), None);
        Ok(())
    }

    #[test]
    fn author_count_mismatch_names_file_and_array() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.npz");
        tiny(&path, 3, 0.25);
        let msg = ArtifactCorpus::open(&path)
            .expect_err("3 authors, 2 posts")
            .to_string();
        assert!(
            msg.contains("c.npz") && msg.contains("'author_ids'"),
            "{msg}"
        );
        assert!(msg.contains("[3]") && msg.contains("[2]"), "{msg}");
    }

    #[test]
    fn non_finite_representation_names_the_element() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.npz");
        tiny(&path, 2, f32::INFINITY);
        let msg = ArtifactCorpus::open(&path).expect_err("inf").to_string();
        assert!(
            msg.contains("'candidate_representations' element 1 is inf"),
            "{msg}"
        );
    }
}
