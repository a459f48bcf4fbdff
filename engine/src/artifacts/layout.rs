//! A released artifact directory as `run_pipeline.py` reads it:
//!
//! ```text
//! <dir>/retrieval/{config.json, model_params.npz, embedding_tables.npz}
//! <dir>/ranker/{config.json, model_params.npz, embedding_tables.npz}
//! <dir>/sports_corpus.npz  <dir>/example_sequence.json   (script defaults)
//! ```
//!
//! Opening reads and checks both configs and opens the archives; parameters
//! are read by name on demand (`model_params.npz` keys are full haiku names,
//! e.g. `phoenix_model/proj_mat_1`). [`ModelArtifacts::unified_table`] builds
//! the table the script builds: [`UNIFIED_PADDING_ROWS`] zero rows, then the
//! user, item and author tables.

use std::path::{Path, PathBuf};

use super::config::ArtifactConfig;
use super::corpus::ArtifactCorpus;
use super::error::{ArtifactError, Result};
use super::hash::{PublishedHash, UNIFIED_PADDING_ROWS, VocabSizes};
use super::npz::{Array, NpzFile};
use super::sequence::Sequence;

/// The corpus file name `run_pipeline.py` uses by default.
pub const DEFAULT_CORPUS: &str = "sports_corpus.npz";
/// The sequence file name `run_pipeline.py` uses by default.
pub const DEFAULT_SEQUENCE: &str = "example_sequence.json";

/// Which of the two released models a subdirectory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelRole {
    /// `retrieval/`: user and candidate towers.
    Retrieval,
    /// `ranker/`: the ranking transformer.
    Ranker,
}

impl ModelRole {
    /// The subdirectory name.
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Retrieval => "retrieval",
            Self::Ranker => "ranker",
        }
    }
}

/// The embedding-table arrays of `embedding_tables.npz`, in unified order.
pub const EMBEDDING_TABLES: [&str; 3] = ["user_embeddings", "item_embeddings", "author_embeddings"];

/// One model's subdirectory: its config, hash and archives.
#[derive(Debug)]
pub struct ModelArtifacts {
    /// Which model.
    pub role: ModelRole,
    /// The subdirectory.
    pub dir: PathBuf,
    /// `config.json`, checked.
    pub config: ArtifactConfig,
    /// The model's published hash (from `config.json`).
    pub hash: PublishedHash,
    /// `model_params.npz`: one array per haiku parameter, keyed by full name.
    pub model_params: NpzFile,
    /// `embedding_tables.npz`: the three [`EMBEDDING_TABLES`].
    pub embedding_tables: NpzFile,
}

impl ModelArtifacts {
    /// Opens `dir` as the `role` model.
    pub fn open(dir: impl AsRef<Path>, role: ModelRole) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let config_path = dir.join("config.json");
        let config = ArtifactConfig::from_file(&config_path)?;
        if role == ModelRole::Ranker && config.post_age_granularity_mins.is_none() {
            return Err(ArtifactError::invalid(
                &config_path,
                "post_age_granularity_mins",
                "missing",
                "a positive bucket width in minutes (the ranker's post-age feature)",
            ));
        }
        let hash = config.published_hash(&config_path)?;
        let model_params = NpzFile::open(dir.join("model_params.npz"))?;
        let embedding_tables = NpzFile::open(dir.join("embedding_tables.npz"))?;
        Ok(Self {
            role,
            dir,
            config,
            hash,
            model_params,
            embedding_tables,
        })
    }

    /// Reads the three embedding tables and builds the unified table
    /// `[65 + uv + iv + av, D]` (zero rows first), as the script does. Each
    /// table must be `[*_vocab_size, emb_size]` so the hash's rows land in it.
    pub fn unified_table(&mut self) -> Result<UnifiedTable> {
        let vocab = self.config.vocab_sizes();
        let dim = self.config.emb_size;
        let [user, item, author] = EMBEDDING_TABLES;
        let user = self.embedding_tables.f32(user)?;
        let item = self.embedding_tables.f32(item)?;
        let author = self.embedding_tables.f32(author)?;
        build_unified_table(
            self.embedding_tables.path(),
            [&user, &item, &author],
            vocab,
            dim,
        )
    }
}

/// The unified embedding table, row-major f32.
#[derive(Debug, Clone, PartialEq)]
pub struct UnifiedTable {
    /// `65 + user + item + author` rows.
    pub rows: usize,
    /// D.
    pub dim: usize,
    /// `rows * dim` values.
    pub data: Vec<f32>,
}

impl UnifiedTable {
    /// Row `r` (a value of [`PublishedHash::rows`]), or `None` out of range.
    pub fn row(&self, r: i64) -> Option<&[f32]> {
        let r = usize::try_from(r).ok()?;
        if r >= self.rows {
            return None;
        }
        self.data.get(r * self.dim..(r + 1) * self.dim)
    }
}

/// Stacks 65 zero rows and the user, item and author `tables` (in that order)
/// into one table; each must be `[vocab, dim]`, finite. `path` names the
/// archive in errors.
pub fn build_unified_table(
    path: &Path,
    tables: [&Array<f32>; 3],
    vocab: VocabSizes,
    dim: usize,
) -> Result<UnifiedTable> {
    let expected_rows = [vocab.user, vocab.item, vocab.author];
    let rows = vocab.unified_rows();
    let mut data = Vec::with_capacity(rows * dim);
    data.resize(UNIFIED_PADDING_ROWS * dim, 0.0);
    for ((name, table), want) in EMBEDDING_TABLES.into_iter().zip(tables).zip(expected_rows) {
        if table.shape != [want, dim] {
            return Err(ArtifactError::Shape {
                path: path.to_path_buf(),
                name: name.to_string(),
                found: table.shape.clone(),
                expected: format!("[{want}, {dim}] from config.json's vocab size and emb_size"),
            });
        }
        check_finite(path, name, &table.data)?;
        data.extend_from_slice(&table.data);
    }
    Ok(UnifiedTable { rows, dim, data })
}

/// The first non-finite element of `data`, as an error naming the array.
pub(crate) fn check_finite(path: &Path, name: &str, data: &[f32]) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(ArtifactError::NonFinite {
            path: path.to_path_buf(),
            name: name.to_string(),
            index,
            value: data[index],
        }),
    }
}

/// A released artifact directory: both models, plus paths of the script's
/// default corpus and sequence.
#[derive(Debug)]
pub struct ArtifactDir {
    /// The directory.
    pub root: PathBuf,
    /// `retrieval/`.
    pub retrieval: ModelArtifacts,
    /// `ranker/`.
    pub ranker: ModelArtifacts,
}

impl ArtifactDir {
    /// Opens `root/retrieval` and `root/ranker`.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let retrieval = ModelArtifacts::open(root.join("retrieval"), ModelRole::Retrieval)?;
        let ranker = ModelArtifacts::open(root.join("ranker"), ModelRole::Ranker)?;
        Ok(Self {
            root,
            retrieval,
            ranker,
        })
    }

    /// Reads corpus `path` (the script's default is `root/`[`DEFAULT_CORPUS`])
    /// and checks its width against the retrieval model's `emb_size`.
    pub fn corpus(&self, path: impl AsRef<Path>) -> Result<ArtifactCorpus> {
        let path = path.as_ref();
        let corpus = ArtifactCorpus::open(path)?;
        let dim = self.retrieval.config.emb_size;
        if corpus.dim != dim {
            return Err(ArtifactError::Shape {
                path: path.to_path_buf(),
                name: super::corpus::REPRESENTATIONS.to_string(),
                found: vec![corpus.len(), corpus.dim],
                expected: format!("[N, {dim}], the retrieval model's emb_size"),
            });
        }
        Ok(corpus)
    }

    /// `root/`[`DEFAULT_CORPUS`].
    pub fn default_corpus_path(&self) -> PathBuf {
        self.root.join(DEFAULT_CORPUS)
    }

    /// `root/`[`DEFAULT_SEQUENCE`], read.
    pub fn default_sequence(&self) -> Result<Sequence> {
        Sequence::open(self.root.join(DEFAULT_SEQUENCE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash_embed::EntityKind;

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/phoenix-v2/v2_artifacts")
    }

    #[test]
    fn fixture_dir_opens_both_models() -> Result<()> {
        let dir = ArtifactDir::open(root())?;
        assert_eq!(dir.retrieval.role, ModelRole::Retrieval);
        assert_eq!(dir.ranker.config.num_layers, 3);
        assert!(dir.retrieval.model_params.contains("~/log_temperature"));
        assert!(
            dir.ranker
                .model_params
                .contains("phoenix_model/post_age_embedding_table")
        );
        for name in EMBEDDING_TABLES {
            assert!(dir.ranker.embedding_tables.contains(name), "{name}");
        }
        let mut dir = dir;
        let params = &mut dir.ranker.model_params;
        assert_eq!(params.names().len(), 44);
        // May ranker: proj_mat_3 is (Hi + Ha + 3) * D wide, 82 post-age rows.
        assert_eq!(
            params.describe("phoenix_model/proj_mat_3")?,
            ("<f4".to_string(), vec![112, 16])
        );
        assert_eq!(
            params.describe("phoenix_model/post_age_embedding_table")?,
            ("<f4".to_string(), vec![82, 16])
        );
        let params = &mut dir.retrieval.model_params;
        assert_eq!(params.names().len(), 29);
        assert_eq!(
            params.describe("~/log_temperature")?,
            ("<f4".to_string(), vec![])
        );
        Ok(())
    }

    #[test]
    fn unified_table_has_65_zero_rows_then_user_item_author() -> Result<()> {
        let mut dir = ArtifactDir::open(root())?;
        for model in [&mut dir.retrieval, &mut dir.ranker] {
            let vocab = model.config.vocab_sizes();
            let table = model.unified_table()?;
            assert_eq!(table.rows, 65 + vocab.user + vocab.item + vocab.author);
            assert_eq!(table.dim, 16);
            assert_eq!(table.data.len(), table.rows * 16);
            assert!(table.data[..65 * 16].iter().all(|&v| v == 0.0));
            let user = model.embedding_tables.f32("user_embeddings")?;
            let author = model.embedding_tables.f32("author_embeddings")?;
            // First user row follows the padding; last author row ends the table.
            assert_eq!(table.row(65), Some(&user.data[..16]));
            assert_eq!(
                table.row(i64::try_from(table.rows - 1).expect("small")),
                Some(&author.data[author.len() - 16..])
            );
            assert_eq!(table.row(i64::try_from(table.rows).expect("small")), None);
            assert_eq!(table.row(-1), None);
            // The hash's author offset lands on the author section.
            assert_eq!(
                model.hash.row_offset(EntityKind::Author),
                i64::try_from(65 + vocab.user + vocab.item).expect("small")
            );
        }
        Ok(())
    }

    #[test]
    fn table_shape_must_match_config_vocab() {
        let vocab = VocabSizes {
            user: 2,
            item: 3,
            author: 2,
        };
        let ok = |rows: usize| Array {
            shape: vec![rows, 4],
            data: vec![1.0; rows * 4],
        };
        let (user, item, author) = (ok(2), ok(4), ok(2));
        let err = build_unified_table(Path::new("t.npz"), [&user, &item, &author], vocab, 4)
            .expect_err("item has 4 rows, config says 3");
        let msg = err.to_string();
        assert!(
            msg.contains("t.npz") && msg.contains("'item_embeddings'"),
            "{msg}"
        );
        assert!(msg.contains("[3, 4]"), "{msg}");
        let item = ok(3);
        let table = build_unified_table(Path::new("t.npz"), [&user, &item, &author], vocab, 4)
            .expect("shapes match");
        assert_eq!(table.rows, 65 + 7);
    }

    #[test]
    fn non_finite_embedding_is_refused_naming_the_array() {
        let vocab = VocabSizes {
            user: 2,
            item: 2,
            author: 2,
        };
        let ok = Array {
            shape: vec![2, 1],
            data: vec![0.5, 0.5],
        };
        let bad = Array {
            shape: vec![2, 1],
            data: vec![0.5, f32::NAN],
        };
        let err =
            build_unified_table(Path::new("t.npz"), [&ok, &ok, &bad], vocab, 1).expect_err("nan");
        assert!(
            err.to_string().contains("'author_embeddings' element 1"),
            "{err}"
        );
    }

    #[test]
    fn ranker_without_post_age_granularity_is_refused() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let src = root().join("retrieval");
        for f in ["config.json", "model_params.npz", "embedding_tables.npz"] {
            std::fs::copy(src.join(f), tmp.path().join(f)).expect("copy");
        }
        let err = ModelArtifacts::open(tmp.path(), ModelRole::Ranker).expect_err("no granularity");
        let msg = err.to_string();
        assert!(
            msg.contains("config.json") && msg.contains("post_age_granularity_mins"),
            "{msg}"
        );
    }

    #[test]
    fn default_corpus_and_sequence_open_from_the_dir() -> Result<()> {
        let dir = ArtifactDir::open(root())?;
        let corpus = dir.corpus(dir.default_corpus_path())?;
        assert_eq!(corpus.dim, dir.retrieval.config.emb_size);
        assert_eq!(dir.default_sequence()?.history.len(), 12);
        Ok(())
    }
}
