//! `retrieval/config.json` and `ranker/config.json` of a released artifact
//! directory: exactly the keys `run_pipeline.py` reads, under its names.
//! Unknown keys are accepted (later releases may add some); every listed key
//! is required except `post_age_granularity_mins`, which only the ranker has
//! ([`super::layout`] requires it there).

use std::path::Path;

use serde::Deserialize;

use super::error::{ArtifactError, Result};
use super::hash::{HashParams, PublishedHash, VocabSizes};
use crate::hash_embed::EntityKind;

/// One model's `config.json`, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ArtifactConfig {
    /// D: width of every embedding and of the transformer.
    pub emb_size: usize,
    /// Per-head width of queries and keys.
    pub key_size: usize,
    /// Attention heads (the script also uses it as the KV-head count).
    pub num_heads: usize,
    /// Transformer layers.
    pub num_layers: usize,
    /// S: history slots (the script takes it from the retrieval config for
    /// both models).
    pub history_seq_len: usize,
    /// C: candidate slots per ranker call.
    pub candidate_seq_len: usize,
    /// A: action columns.
    pub num_actions: usize,
    /// Hash functions per user.
    pub num_user_hashes: usize,
    /// Hash functions per post.
    pub num_item_hashes: usize,
    /// Hash functions per author.
    pub num_author_hashes: usize,
    /// Rows of the product-surface table.
    pub product_surface_vocab_size: usize,
    /// Rows of `user_embeddings`.
    pub user_vocab_size: usize,
    /// Rows of `item_embeddings`.
    pub item_vocab_size: usize,
    /// Rows of `author_embeddings`.
    pub author_vocab_size: usize,
    /// The published hash's parameters.
    pub hash_params: HashParams,
    /// Post-age bucket width in minutes (ranker only).
    #[serde(default)]
    pub post_age_granularity_mins: Option<usize>,
}

impl ArtifactConfig {
    /// Reads and checks `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ArtifactError::io(path, e))?;
        Self::from_json(&text, path)
    }

    /// Parses and checks `text`; `path` only names the source in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let cfg: Self = serde_json::from_str(text).map_err(|cause| ArtifactError::Json {
            path: path.to_path_buf(),
            cause,
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The three vocabulary sizes.
    pub fn vocab_sizes(&self) -> VocabSizes {
        VocabSizes {
            user: self.user_vocab_size,
            item: self.item_vocab_size,
            author: self.author_vocab_size,
        }
    }

    /// The model's published hash (`path` names the file in errors).
    pub fn published_hash(&self, path: &Path) -> Result<PublishedHash> {
        PublishedHash::new(self.hash_params.clone(), self.vocab_sizes()).map_err(|cause| {
            ArtifactError::HashParams {
                path: path.to_path_buf(),
                cause,
            }
        })
    }

    /// Hash functions of `kind` as `num_*_hashes` declares them.
    pub fn num_hashes(&self, kind: EntityKind) -> usize {
        match kind {
            EntityKind::User => self.num_user_hashes,
            EntityKind::Post => self.num_item_hashes,
            EntityKind::Author => self.num_author_hashes,
        }
    }

    /// Sizes are positive, `num_*_hashes` match `hash_params`, and the hash
    /// is usable.
    fn validate(&self, path: &Path) -> Result<()> {
        let positive = [
            ("emb_size", self.emb_size),
            ("key_size", self.key_size),
            ("num_heads", self.num_heads),
            ("num_layers", self.num_layers),
            ("history_seq_len", self.history_seq_len),
            ("candidate_seq_len", self.candidate_seq_len),
            ("num_actions", self.num_actions),
            (
                "product_surface_vocab_size",
                self.product_surface_vocab_size,
            ),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(ArtifactError::invalid(path, field, value, "> 0"));
            }
        }
        if self.post_age_granularity_mins == Some(0) {
            return Err(ArtifactError::invalid(
                path,
                "post_age_granularity_mins",
                0,
                "> 0",
            ));
        }
        let hash = self.published_hash(path)?;
        for (kind, field, scales) in [
            (EntityKind::User, "num_user_hashes", "user_hash_scales"),
            (EntityKind::Post, "num_item_hashes", "item_hash_scales"),
            (
                EntityKind::Author,
                "num_author_hashes",
                "author_hash_scales",
            ),
        ] {
            let declared = self.num_hashes(kind);
            let functions = hash.num_hashes(kind);
            if declared != functions {
                return Err(ArtifactError::invalid(
                    path,
                    field,
                    declared,
                    format!("{functions}, the length of hash_params.{scales}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde_json::Value;

    use super::*;

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/phoenix-v2/v2_artifacts")
            .join(rel)
    }

    fn retrieval_json() -> Value {
        let text = std::fs::read_to_string(fixture("retrieval/config.json")).expect("fixture");
        serde_json::from_str(&text).expect("json")
    }

    fn parse(v: &Value) -> Result<ArtifactConfig> {
        ArtifactConfig::from_json(&v.to_string(), Path::new("cfg.json"))
    }

    #[test]
    fn fixture_configs_parse_with_readme_values() -> Result<()> {
        let r = ArtifactConfig::from_file(fixture("retrieval/config.json"))?;
        assert_eq!(
            (r.emb_size, r.key_size, r.num_heads, r.num_layers),
            (16, 8, 2, 2)
        );
        assert_eq!(
            (r.history_seq_len, r.candidate_seq_len, r.num_actions),
            (31, 32, 19)
        );
        assert_eq!(
            (r.user_vocab_size, r.item_vocab_size, r.author_vocab_size),
            (2000, 5000, 3000)
        );
        assert_eq!(r.post_age_granularity_mins, None);
        let k = ArtifactConfig::from_file(fixture("ranker/config.json"))?;
        assert_eq!(k.num_layers, 3);
        assert_eq!(
            (k.user_vocab_size, k.item_vocab_size, k.author_vocab_size),
            (2500, 4000, 3500)
        );
        assert_eq!(k.post_age_granularity_mins, Some(60));
        assert_ne!(k.hash_params, r.hash_params);
        Ok(())
    }

    #[test]
    fn unknown_keys_are_accepted() -> Result<()> {
        let mut v = retrieval_json();
        v["some_future_key"] = Value::from(1);
        parse(&v)?;
        Ok(())
    }

    #[test]
    fn missing_required_key_is_named() {
        let mut v = retrieval_json();
        v.as_object_mut().expect("object").remove("item_vocab_size");
        let msg = parse(&v).expect_err("missing key").to_string();
        assert!(
            msg.contains("cfg.json") && msg.contains("item_vocab_size"),
            "{msg}"
        );
    }

    #[test]
    fn num_hashes_must_match_hash_params() {
        let mut v = retrieval_json();
        v["num_author_hashes"] = Value::from(3);
        let msg = parse(&v).expect_err("3 declared, 2 given").to_string();
        assert!(msg.contains("num_author_hashes is 3"), "{msg}");
        assert!(msg.contains("hash_params.author_hash_scales"), "{msg}");
    }

    #[test]
    fn bad_hash_params_name_file_and_field() {
        let mut v = retrieval_json();
        v["hash_params"]["user_modulus"] = Value::from(-5);
        let msg = parse(&v).expect_err("negative modulus").to_string();
        assert!(
            msg.contains("cfg.json: hash_params.user_modulus is -5"),
            "{msg}"
        );
        let mut v = retrieval_json();
        v["user_vocab_size"] = Value::from(1);
        let msg = parse(&v).expect_err("vocab 1").to_string();
        assert!(msg.contains("user_vocab_size is 1"), "{msg}");
    }

    #[test]
    fn zero_sizes_are_refused() {
        let mut v = retrieval_json();
        v["emb_size"] = Value::from(0);
        let msg = parse(&v).expect_err("D = 0").to_string();
        assert!(msg.contains("emb_size is 0"), "{msg}");
    }
}
