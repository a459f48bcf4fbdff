//! The id hash of X's released `run_pipeline.py` and the rows it addresses in
//! the unified embedding table (README "What run_pipeline.py does", steps 1-2).
//!
//! For entity id `x` (int64; uint64 ids are reinterpreted as two's
//! complement first) and hash function `j` of its kind:
//!
//! ```text
//! t = (x * scale_j + bias_j)           wrapping in two's-complement i64
//! h = t mod modulus                    non-negative (floor) remainder
//! bucket = h mod (vocab - 1) + 1       in [1, vocab - 1];  id 0 → bucket 0
//! ```
//!
//! The unified table is [`UNIFIED_PADDING_ROWS`] zero rows, then the user,
//! item and author tables; bucket `b > 0` is row `b + 65` (user),
//! `b + 65 + user_vocab` (item), `b + 65 + user_vocab + item_vocab` (author),
//! and bucket 0 is row 0, a zero vector. Row 0 of each section is never
//! addressed. This is not our own hash ([`crate::hash_embed`]); the two are
//! unrelated.

use serde::Deserialize;

use super::error::{HashParamsError, kind_prefix};
use crate::hash_embed::EntityKind;

/// Zero rows at the head of the unified table, before the user rows.
pub const UNIFIED_PADDING_ROWS: usize = 65;

/// `hash_params` of a released `config.json`: per kind, one scale and one
/// bias per hash function and one modulus (a prime of about 2-3e9).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct HashParams {
    /// User hash multipliers.
    pub user_hash_scales: Vec<i64>,
    /// User hash offsets.
    pub user_biases: Vec<i64>,
    /// User modulus.
    pub user_modulus: i64,
    /// Item (post) hash multipliers.
    pub item_hash_scales: Vec<i64>,
    /// Item (post) hash offsets.
    pub item_biases: Vec<i64>,
    /// Item (post) modulus.
    pub item_modulus: i64,
    /// Author hash multipliers.
    pub author_hash_scales: Vec<i64>,
    /// Author hash offsets.
    pub author_biases: Vec<i64>,
    /// Author modulus.
    pub author_modulus: i64,
}

impl HashParams {
    /// Scales, biases and modulus of `kind`.
    pub fn of(&self, kind: EntityKind) -> (&[i64], &[i64], i64) {
        match kind {
            EntityKind::User => (&self.user_hash_scales, &self.user_biases, self.user_modulus),
            EntityKind::Post => (&self.item_hash_scales, &self.item_biases, self.item_modulus),
            EntityKind::Author => (
                &self.author_hash_scales,
                &self.author_biases,
                self.author_modulus,
            ),
        }
    }

    /// Checks each kind: as many biases as scales, at least one, modulus > 0.
    pub fn validate(&self) -> Result<(), HashParamsError> {
        for kind in ALL_KINDS {
            let (scales, biases, modulus) = self.of(kind);
            if scales.len() != biases.len() {
                return Err(HashParamsError::CountMismatch {
                    kind,
                    scales: scales.len(),
                    biases: biases.len(),
                });
            }
            if scales.is_empty() {
                return Err(HashParamsError::NoHashFunctions { kind });
            }
            if modulus <= 0 {
                return Err(HashParamsError::NonPositiveModulus { kind, modulus });
            }
        }
        Ok(())
    }
}

/// The three kinds, in unified-table order.
const ALL_KINDS: [EntityKind; 3] = [EntityKind::User, EntityKind::Post, EntityKind::Author];

/// Rows of the user, item and author tables (`*_vocab_size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VocabSizes {
    /// `user_vocab_size`.
    pub user: usize,
    /// `item_vocab_size`.
    pub item: usize,
    /// `author_vocab_size`.
    pub author: usize,
}

impl VocabSizes {
    /// Rows of `kind`'s table.
    pub fn of(&self, kind: EntityKind) -> usize {
        match kind {
            EntityKind::User => self.user,
            EntityKind::Post => self.item,
            EntityKind::Author => self.author,
        }
    }

    /// Rows of the unified table: 65 padding rows plus the three tables.
    pub fn unified_rows(&self) -> usize {
        UNIFIED_PADDING_ROWS + self.user + self.item + self.author
    }
}

/// The published hash of one model (retrieval or ranker), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedHash {
    params: HashParams,
    vocab: VocabSizes,
    /// Per kind (table order): vocab as i64 and the unified-table offset.
    vocab_i64: [i64; 3],
    offsets: [i64; 3],
}

impl PublishedHash {
    /// Validates `params` and `vocab` (each vocab >= 2, and the unified table's
    /// row count fits in i64).
    pub fn new(params: HashParams, vocab: VocabSizes) -> Result<Self, HashParamsError> {
        params.validate()?;
        let mut vocab_i64 = [0i64; 3];
        let mut offsets = [0i64; 3];
        let mut next = UNIFIED_PADDING_ROWS as i64;
        for (slot, kind) in ALL_KINDS.into_iter().enumerate() {
            let rows = vocab.of(kind);
            if rows < 2 {
                return Err(HashParamsError::VocabTooSmall { kind, vocab: rows });
            }
            let too_large = HashParamsError::VocabTooLarge { kind, vocab: rows };
            let rows_i64 = i64::try_from(rows).map_err(|_| too_large.clone())?;
            vocab_i64[slot] = rows_i64;
            offsets[slot] = next;
            next = next.checked_add(rows_i64).ok_or(too_large)?;
        }
        Ok(Self {
            params,
            vocab,
            vocab_i64,
            offsets,
        })
    }

    /// The hash parameters.
    pub fn params(&self) -> &HashParams {
        &self.params
    }

    /// The vocabulary sizes.
    pub fn vocab(&self) -> VocabSizes {
        self.vocab
    }

    /// Number of hash functions of `kind`.
    pub fn num_hashes(&self, kind: EntityKind) -> usize {
        self.params.of(kind).0.len()
    }

    /// Row of the unified table where `kind`'s bucket 0 would sit (its
    /// bucket `b > 0` is row `offset + b`).
    pub fn row_offset(&self, kind: EntityKind) -> i64 {
        self.offsets[slot(kind)]
    }

    /// Buckets of `id` in `kind`'s own table, one per hash function, each in
    /// `[1, vocab - 1]`; all 0 for id 0.
    pub fn hashes(&self, kind: EntityKind, id: i64) -> Vec<i64> {
        let (scales, biases, modulus) = self.params.of(kind);
        let vocab = self.vocab_i64[slot(kind)];
        scales
            .iter()
            .zip(biases)
            .map(|(&scale, &bias)| published_bucket(id, scale, bias, modulus, vocab))
            .collect()
    }

    /// Unified-table rows of `id`, one per hash function: bucket `b > 0` at
    /// `b + row_offset(kind)`, bucket 0 at row 0.
    pub fn rows(&self, kind: EntityKind, id: i64) -> Vec<i64> {
        let offset = self.row_offset(kind);
        self.hashes(kind, id)
            .into_iter()
            .map(|b| if b == 0 { 0 } else { b + offset })
            .collect()
    }
}

impl crate::hash_embed::RowHash for PublishedHash {
    fn rows(&self, kind: EntityKind, id: i64) -> Vec<i64> {
        PublishedHash::rows(self, kind, id)
    }
}

fn slot(kind: EntityKind) -> usize {
    match kind {
        EntityKind::User => 0,
        EntityKind::Post => 1,
        EntityKind::Author => 2,
    }
}

/// One bucket of the published hash (module doc); `modulus > 0` and
/// `vocab >= 2` are the caller's to ensure ([`PublishedHash::new`] does).
pub fn published_bucket(id: i64, scale: i64, bias: i64, modulus: i64, vocab: i64) -> i64 {
    if id == 0 {
        return 0;
    }
    let t = id.wrapping_mul(scale).wrapping_add(bias);
    t.rem_euclid(modulus) % (vocab - 1) + 1
}

/// The JSON field of `kind`'s vocabulary size.
pub fn vocab_field(kind: EntityKind) -> String {
    format!("{}_vocab_size", kind_prefix(kind))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    fn artifacts() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/phoenix-v2/v2_artifacts")
    }

    fn json(rel: &str) -> Value {
        let text = std::fs::read_to_string(artifacts().join(rel)).expect("fixture file");
        serde_json::from_str(&text).expect("fixture json")
    }

    /// The fixture's published hash of `model` (`retrieval` or `ranker`).
    fn fixture_hash(model: &str) -> PublishedHash {
        let cfg = json(&format!("{model}/config.json"));
        let params: HashParams =
            serde_json::from_value(cfg["hash_params"].clone()).expect("hash_params");
        let size = |k: &str| {
            cfg[k]
                .as_u64()
                .and_then(|v| usize::try_from(v).ok())
                .expect("vocab size")
        };
        let vocab = VocabSizes {
            user: size("user_vocab_size"),
            item: size("item_vocab_size"),
            author: size("author_vocab_size"),
        };
        PublishedHash::new(params, vocab).expect("valid fixture params")
    }

    /// `expected.json[key]` as rows of i64.
    fn rows_of(expected: &Value, key: &str) -> Vec<Vec<i64>> {
        serde_json::from_value(expected[key].clone()).expect("integer rows")
    }

    /// An id from JSON, read as the script does: uint64 or int64 → int64.
    fn json_id(v: &Value) -> i64 {
        v.as_i64()
            .or_else(|| v.as_u64().map(u64::cast_signed))
            .expect("integer id")
    }

    /// The hash restated on i128 with Python's semantics, independently of
    /// `published_bucket`'s wrapping ops.
    fn reference_bucket(id: i64, scale: i64, bias: i64, modulus: i64, vocab: i64) -> i64 {
        if id == 0 {
            return 0;
        }
        let wrap = |v: i128| -> i128 {
            let m = v.rem_euclid(1i128 << 64);
            if m >= 1i128 << 63 {
                m - (1i128 << 64)
            } else {
                m
            }
        };
        let t = wrap(wrap(i128::from(id) * i128::from(scale)) + i128::from(bias));
        let h = t.rem_euclid(i128::from(modulus));
        i64::try_from(h % i128::from(vocab - 1) + 1).expect("bucket fits")
    }

    fn small_params() -> HashParams {
        HashParams {
            user_hash_scales: vec![3, -5],
            user_biases: vec![7, 11],
            user_modulus: 13,
            item_hash_scales: vec![2],
            item_biases: vec![0],
            item_modulus: 101,
            author_hash_scales: vec![1],
            author_biases: vec![-1000],
            author_modulus: 97,
        }
    }

    #[test]
    fn id_zero_hashes_to_bucket_and_row_zero() {
        let hash = fixture_hash("retrieval");
        for kind in ALL_KINDS {
            assert_eq!(hash.hashes(kind, 0), vec![0, 0]);
            assert_eq!(hash.rows(kind, 0), vec![0, 0]);
        }
    }

    #[test]
    fn hand_computed_buckets_small_numbers() {
        let vocab = VocabSizes {
            user: 10,
            item: 20,
            author: 30,
        };
        let hash = PublishedHash::new(small_params(), vocab).expect("valid");
        // user j=0: 4*3+7 = 19; 19 mod 13 = 6; 6 mod 9 + 1 = 7.
        // user j=1: 4*-5+11 = -9; floor mod 13 = 4 (not -9); 4 mod 9 + 1 = 5.
        assert_eq!(hash.hashes(EntityKind::User, 4), vec![7, 5]);
        assert_eq!(hash.rows(EntityKind::User, 4), vec![7 + 65, 5 + 65]);
        // item: 60*2 = 120; 120 mod 101 = 19; 19 mod 19 + 1 = 1.
        assert_eq!(hash.hashes(EntityKind::Post, 60), vec![1]);
        assert_eq!(hash.rows(EntityKind::Post, 60), vec![1 + 65 + 10]);
        // author: 5 - 1000 = -995; floor mod 97 = 72; 72 mod 29 + 1 = 15.
        assert_eq!(hash.hashes(EntityKind::Author, 5), vec![15]);
        assert_eq!(hash.rows(EntityKind::Author, 5), vec![15 + 65 + 10 + 20]);
        // a negative id: -3*3+7 = -2 → 11 → 11 mod 9 + 1 = 3.
        assert_eq!(hash.hashes(EntityKind::User, -3)[0], 3);
        assert_eq!(vocab.unified_rows(), 65 + 60);
    }

    #[test]
    fn product_wraps_in_int64_before_the_modulus() {
        // 2^62 * 4 = 2^64 wraps to 0, + 5 = 5: bucket 5 mod 9 + 1 = 6. Without
        // the wrap, (2^64 + 5) mod 13 = 8 would give 9.
        let x = 1i64 << 62;
        assert_eq!(published_bucket(x, 4, 5, 13, 10), 6);
        assert_eq!(reference_bucket(x, 4, 5, 13, 10), 6);
        // Bias addition also wraps: i64::MAX + 1 = i64::MIN.
        let got = published_bucket(1, i64::MAX, 1, 1_000_003, 5000);
        let expected = (i64::MIN.rem_euclid(1_000_003)) % 4999 + 1;
        assert_eq!(got, expected);
        assert_eq!(got, reference_bucket(1, i64::MAX, 1, 1_000_003, 5000));
    }

    #[test]
    fn every_corpus_sized_id_matches_the_i128_restatement_at_the_fixture_params() {
        // Snowflake ids overflow every product, as the README says.
        let hash = fixture_hash("retrieval");
        let (scales, biases, modulus) = hash.params().of(EntityKind::Post);
        let id = 2_051_618_569_723_965_384i64;
        assert!(id.checked_mul(scales[0]).is_none());
        for (j, b) in hash.hashes(EntityKind::Post, id).into_iter().enumerate() {
            assert_eq!(b, reference_bucket(id, scales[j], biases[j], modulus, 5000));
        }
    }

    proptest! {
        #[test]
        fn bucket_equals_i128_restatement_and_stays_in_range(
            id in any::<i64>(),
            scale in any::<i64>(),
            bias in any::<i64>(),
            modulus in 1i64..=i64::MAX,
            vocab in 2i64..1_000_000,
        ) {
            let got = published_bucket(id, scale, bias, modulus, vocab);
            prop_assert_eq!(got, reference_bucket(id, scale, bias, modulus, vocab));
            if id == 0 {
                prop_assert_eq!(got, 0);
            } else {
                prop_assert!((1..vocab).contains(&got));
            }
        }
    }

    #[test]
    fn user_and_history_rows_equal_expected_json() {
        let expected = json("expected.json");
        let sequence = json("example_sequence.json");
        let user_id = json_id(&sequence["user_id"]);
        let history = sequence["history"].as_array().expect("history array");
        for model in ["retrieval", "ranker"] {
            let hash = fixture_hash(model);
            let user = rows_of(&expected, &format!("{model}_user_hashes"));
            assert_eq!(
                user,
                vec![hash.rows(EntityKind::User, user_id)],
                "{model} user"
            );
            let posts = rows_of(&expected, &format!("{model}_history_post_hashes"));
            let authors = rows_of(&expected, &format!("{model}_history_author_hashes"));
            assert_eq!(posts.len(), 31, "{model}: S rows");
            for slot in 0..posts.len() {
                // Slots past the file's items hold id 0.
                let (post, author) = history.get(slot).map_or((0, 0), |item| {
                    (json_id(&item["post_id"]), json_id(&item["author_id"]))
                });
                assert_eq!(
                    posts[slot],
                    hash.rows(EntityKind::Post, post),
                    "{model} post {slot}"
                );
                assert_eq!(
                    authors[slot],
                    hash.rows(EntityKind::Author, author),
                    "{model} author {slot}"
                );
            }
        }
    }

    #[test]
    fn ranker_candidate_rows_equal_expected_json() {
        let expected = json("expected.json");
        let hash = fixture_hash("ranker");
        let post_ids: Vec<i64> = expected["retrieved_post_ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(json_id)
            .collect();
        let author_ids: Vec<i64> = expected["retrieved_author_ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(json_id)
            .collect();
        let posts = rows_of(&expected, "ranker_candidate_post_hashes");
        let authors = rows_of(&expected, "ranker_candidate_author_hashes");
        assert_eq!(posts.len(), 200);
        assert_eq!(post_ids.len(), 200);
        for (k, (&post, &author)) in post_ids.iter().zip(&author_ids).enumerate() {
            assert_eq!(posts[k], hash.rows(EntityKind::Post, post), "post {k}");
            assert_eq!(
                authors[k],
                hash.rows(EntityKind::Author, author),
                "author {k}"
            );
        }
    }

    #[test]
    fn mismatched_scale_and_bias_counts_name_both_fields() {
        let mut params = small_params();
        params.item_biases.push(1);
        let err = params.validate().expect_err("2 biases for 1 scale");
        let msg = err.to_string();
        assert!(msg.contains("hash_params.item_hash_scales"), "{msg}");
        assert!(msg.contains("hash_params.item_biases"), "{msg}");
    }

    #[test]
    fn non_positive_modulus_and_tiny_vocab_are_refused_naming_the_field() {
        let mut params = small_params();
        params.author_modulus = 0;
        let msg = params.validate().expect_err("modulus 0").to_string();
        assert!(msg.contains("hash_params.author_modulus is 0"), "{msg}");

        let vocab = VocabSizes {
            user: 10,
            item: 1,
            author: 30,
        };
        let msg = PublishedHash::new(small_params(), vocab)
            .expect_err("vocab 1")
            .to_string();
        assert!(msg.contains("item_vocab_size is 1"), "{msg}");
        assert_eq!(vocab_field(EntityKind::Post), "item_vocab_size");
    }

    #[test]
    fn empty_hash_function_list_is_refused() {
        let mut params = small_params();
        params.user_hash_scales.clear();
        params.user_biases.clear();
        let msg = params.validate().expect_err("no functions").to_string();
        assert!(
            msg.contains("hash_params.user_hash_scales is empty"),
            "{msg}"
        );
    }
}
