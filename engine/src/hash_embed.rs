//! Hash embeddings: user, post and author tables `[rows, D]`, each read through
//! `K` hash functions (K = `num_user_hashes`, `num_item_hashes`,
//! `num_author_hashes`). Lookup yields exactly the arrays the model takes
//! (`user_hashes`, `user_embeddings`, ...), so ids go in and a
//! [`RecsysInputs`](crate::inputs::RecsysInputs)-ready batch comes out.
//!
//! **The hash** (ours, stable across versions and platforms): for entity id
//! `x != 0`, kind salt `s` and function index `i` (0-based),
//! `h_i(x) = 1 + mix(x ^ s ^ mix(i + 1)) mod (rows - 1)`, where `mix` is the
//! SplitMix64 finaliser. Id 0 means "no entity" and maps to hash 0, the
//! padding value; row 0 of a table is never read (lookups of hash 0 give a
//! zero vector) and `foryou phoenix init` writes it as zeros. The salts are
//! the ASCII of "user", "post" and "author" so the three kinds hash apart.
//!
//! **Storage**: the tables ride in the weights file as
//! [`HASH_TABLE_NAMES`](crate::weights::HASH_TABLE_NAMES), dtype F32 (BF16 and
//! F16 are widened on load), `rows >= 2`.

use std::sync::Arc;

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::inputs::{CandidateInputs, UserInputs};
use crate::tensor_io::SafetensorsFile;
use crate::weights::HASH_TABLE_NAMES;

/// The kind of entity being hashed; each kind has its own table and salt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    /// Users (the viewer).
    User,
    /// Posts.
    Post,
    /// Authors.
    Author,
}

impl EntityKind {
    fn salt(self) -> u64 {
        match self {
            Self::User => u64::from_le_bytes(*b"user\0\0\0\0"),
            Self::Post => u64::from_le_bytes(*b"post\0\0\0\0"),
            Self::Author => u64::from_le_bytes(*b"author\0\0"),
        }
    }
}

/// SplitMix64 finaliser: a bijective 64-bit mixer with good avalanche.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `k` hashes of entity `id` into a table of `rows` rows (see module
/// doc). The id's two's-complement bits are hashed, so a negative id is a
/// valid entity like any other.
pub fn entity_hashes(kind: EntityKind, id: i64, k: usize, rows: usize) -> Vec<i64> {
    if id == 0 || rows < 2 {
        return vec![0; k];
    }
    let id = id.cast_unsigned();
    (0..k as u64)
        .map(|i| 1 + (mix(id ^ kind.salt() ^ mix(i + 1)) % (rows as u64 - 1)) as i64)
        .collect()
}

/// One table `[rows, dim]`, row-major f32.
#[derive(Debug, Clone)]
pub struct HashTable {
    /// Number of rows (hash values `1..rows` are valid).
    pub rows: usize,
    /// D.
    pub dim: usize,
    /// `rows * dim` values.
    pub data: Vec<f32>,
}

impl HashTable {
    /// Appends the row for hash `h` (zeros for 0) to `out`.
    fn gather_into(&self, h: i64, out: &mut Vec<f32>) {
        match usize::try_from(h) {
            Ok(r) if r > 0 && r < self.rows => {
                out.extend_from_slice(&self.data[r * self.dim..(r + 1) * self.dim]);
            }
            _ => out.extend(std::iter::repeat_n(0.0, self.dim)),
        }
    }
}

/// A history item given by ids.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HistoryItem {
    /// Post id (0 = padding).
    pub post_id: i64,
    /// Author id.
    pub author_id: i64,
    /// Bit `i` set when the user took action `i` (so at most 64 actions).
    pub actions: u64,
    /// Product-surface id in `[0, V)`.
    pub product_surface: u32,
    /// May 2026: seconds the viewer dwelt on the post (0: unknown); read by
    /// models with the dwell block.
    pub dwell_s: f32,
}

/// A candidate given by ids.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CandidateItem {
    /// Post id (0 = padding).
    pub post_id: i64,
    /// Author id.
    pub author_id: i64,
    /// Product-surface id in `[0, V)`.
    pub product_surface: u32,
    /// May 2026: when the post was created, unix seconds (0: unknown).
    pub created_s: i64,
    /// May 2026: when the candidate is shown, unix seconds (0: unknown);
    /// with `created_s` it gives the post-age bucket.
    pub impression_s: i64,
}

/// A hash that maps an entity id straight to table rows (the published
/// scheme of X's released artifacts, `artifacts::PublishedHash`): one row
/// per hash function, 0 for id 0.
pub trait RowHash: Send + Sync + std::fmt::Debug {
    /// The table rows of entity `id` of `kind`.
    fn rows(&self, kind: EntityKind, id: i64) -> Vec<i64>;
}

/// How ids become table rows.
#[derive(Debug, Clone)]
pub enum HashScheme {
    /// Ours (module doc): three tables, `k` SplitMix64 hashes per id.
    Ours,
    /// Rows given by another hash, e.g. into one unified table.
    Rows(Arc<dyn RowHash>),
}

/// The three tables of a model (one shared table under a unified scheme)
/// and the scheme that turns ids into their rows.
#[derive(Debug, Clone)]
pub struct HashTables {
    /// User table.
    pub user: Arc<HashTable>,
    /// Post table.
    pub post: Arc<HashTable>,
    /// Author table.
    pub author: Arc<HashTable>,
    /// Ids to rows.
    pub scheme: HashScheme,
}

impl HashTables {
    /// Reads the tables from a weights file: `None` when it has none, an error
    /// when only some are present, a shape is wrong or a value is not finite.
    pub fn from_file(file: &SafetensorsFile, cfg: &ModelConfig) -> Result<Option<Self>> {
        let present: Vec<bool> = HASH_TABLE_NAMES.iter().map(|n| file.contains(n)).collect();
        if present.iter().all(|p| !p) {
            return Ok(None);
        }
        let err = |message: String| EngineError::Weights {
            path: file.path().display().to_string(),
            message,
        };
        let read = |name: &str| -> Result<HashTable> {
            if !file.contains(name) {
                return Err(err(format!(
                    "missing tensor '{name}' (expected shape [rows, {}]); hash tables come as a set of three",
                    cfg.emb_size
                )));
            }
            let t = file.read_f32(name, None)?;
            // As for parameters (weights.rs): a non-finite row would load
            // and then fail every request that hashes to it.
            if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
                return Err(err(format!(
                    "tensor '{name}' holds a non-finite value at element {i}"
                )));
            }
            match t.shape.as_slice() {
                [rows, dim] if *dim == cfg.emb_size && *rows >= 2 && *rows <= i32::MAX as usize => {
                    Ok(HashTable {
                        rows: *rows,
                        dim: *dim,
                        data: t.data,
                    })
                }
                other => Err(err(format!(
                    "tensor '{name}' has shape {other:?}, expected [rows >= 2, {}]",
                    cfg.emb_size
                ))),
            }
        };
        Ok(Some(Self {
            user: Arc::new(read(HASH_TABLE_NAMES[0])?),
            post: Arc::new(read(HASH_TABLE_NAMES[1])?),
            author: Arc::new(read(HASH_TABLE_NAMES[2])?),
            scheme: HashScheme::Ours,
        }))
    }

    /// One table serving every kind, rows chosen by `hash` (X's released
    /// artifacts: a unified table, zero padding rows first).
    pub fn unified(table: HashTable, hash: Arc<dyn RowHash>) -> Self {
        let table = Arc::new(table);
        Self {
            user: table.clone(),
            post: table.clone(),
            author: table,
            scheme: HashScheme::Rows(hash),
        }
    }

    fn table(&self, kind: EntityKind) -> &HashTable {
        match kind {
            EntityKind::User => &self.user,
            EntityKind::Post => &self.post,
            EntityKind::Author => &self.author,
        }
    }

    /// Appends the `k` hashes (table rows) of `id` to `hashes`, and their
    /// rows to `embs` when given.
    fn lookup(
        &self,
        kind: EntityKind,
        id: i64,
        k: usize,
        hashes: &mut Vec<i64>,
        embs: Option<&mut Vec<f32>>,
    ) {
        let table = self.table(kind);
        let start = hashes.len();
        match &self.scheme {
            HashScheme::Ours => hashes.extend(entity_hashes(kind, id, k, table.rows)),
            HashScheme::Rows(h) => {
                let mut rows = h.rows(kind, id);
                rows.resize(k, 0);
                hashes.extend(rows);
            }
        }
        if let Some(embs) = embs {
            for &h in &hashes[start..] {
                table.gather_into(h, embs);
            }
        }
    }

    /// User-side inputs for a batch of `(user_id, history)` rows. Each history
    /// is in chronological order; its last `history_len` items are kept and the
    /// remaining slots are padding (zero hashes, zero embeddings, no actions).
    pub fn user_inputs(
        &self,
        cfg: &ModelConfig,
        rows: &[(i64, &[HistoryItem])],
        history_len: usize,
    ) -> Result<UserInputs> {
        let u = self.user_rows(cfg, rows, history_len, true)?;
        u.validate(cfg)?;
        Ok(u)
    }

    /// [`Self::user_inputs`] without the embeddings (left empty): hash-only
    /// inputs for a model whose tables live on the GPU.
    pub fn user_hashes(
        &self,
        cfg: &ModelConfig,
        rows: &[(i64, &[HistoryItem])],
        history_len: usize,
    ) -> Result<UserInputs> {
        let u = self.user_rows(cfg, rows, history_len, false)?;
        u.validate_ids(cfg)?;
        Ok(u)
    }

    fn user_rows(
        &self,
        cfg: &ModelConfig,
        rows: &[(i64, &[HistoryItem])],
        history_len: usize,
        gather: bool,
    ) -> Result<UserInputs> {
        if cfg.num_actions > 64 {
            return Err(EngineError::Input(format!(
                "num_actions is {}, action bitmasks hold at most 64",
                cfg.num_actions
            )));
        }
        let (hu, hi, ha, a) = (
            cfg.num_user_hashes,
            cfg.num_item_hashes,
            cfg.num_author_hashes,
            cfg.num_actions,
        );
        let mut u = UserInputs {
            batch: rows.len(),
            history_len,
            user_hashes: Vec::new(),
            history_post_hashes: Vec::new(),
            history_author_hashes: Vec::new(),
            history_actions: Vec::new(),
            history_product_surface: Vec::new(),
            user_embeddings: Vec::new(),
            history_post_embeddings: Vec::new(),
            history_author_embeddings: Vec::new(),
            history_dwell: Vec::new(),
            user_ip_embeddings: Vec::new(),
        };
        let pad = HistoryItem::default();
        for (user_id, history) in rows {
            self.lookup(
                EntityKind::User,
                *user_id,
                hu,
                &mut u.user_hashes,
                gather.then_some(&mut u.user_embeddings),
            );
            let kept = &history[history.len().saturating_sub(history_len)..];
            let items = kept
                .iter()
                .chain(std::iter::repeat_n(&pad, history_len - kept.len()));
            for item in items {
                self.lookup(
                    EntityKind::Post,
                    item.post_id,
                    hi,
                    &mut u.history_post_hashes,
                    gather.then_some(&mut u.history_post_embeddings),
                );
                self.lookup(
                    EntityKind::Author,
                    if item.post_id == 0 { 0 } else { item.author_id },
                    ha,
                    &mut u.history_author_hashes,
                    gather.then_some(&mut u.history_author_embeddings),
                );
                u.history_actions.extend(
                    (0..a).map(|i| {
                        f32::from(u8::from(item.post_id != 0 && item.actions >> i & 1 == 1))
                    }),
                );
                u.history_product_surface
                    .push(i64::from(item.product_surface));
                if cfg.continuous.is_some() {
                    u.history_dwell
                        .push(if item.post_id == 0 { 0.0 } else { item.dwell_s });
                }
            }
        }
        Ok(u)
    }

    /// Candidate-side inputs, one list per row, padded to `count` slots
    /// (a row longer than `count` is an error).
    pub fn candidate_inputs(
        &self,
        cfg: &ModelConfig,
        rows: &[&[CandidateItem]],
        count: usize,
    ) -> Result<CandidateInputs> {
        let c = self.candidate_rows(cfg, rows, count, true)?;
        c.validate(cfg, "candidate_")?;
        Ok(c)
    }

    /// [`Self::candidate_inputs`] without the embeddings (left empty).
    pub fn candidate_hashes(
        &self,
        cfg: &ModelConfig,
        rows: &[&[CandidateItem]],
        count: usize,
    ) -> Result<CandidateInputs> {
        let c = self.candidate_rows(cfg, rows, count, false)?;
        c.validate_ids(cfg, "candidate_")?;
        Ok(c)
    }

    fn candidate_rows(
        &self,
        cfg: &ModelConfig,
        rows: &[&[CandidateItem]],
        count: usize,
        gather: bool,
    ) -> Result<CandidateInputs> {
        let (hi, ha) = (cfg.num_item_hashes, cfg.num_author_hashes);
        let mut c = CandidateInputs {
            batch: rows.len(),
            count,
            post_hashes: Vec::new(),
            author_hashes: Vec::new(),
            product_surface: Vec::new(),
            post_embeddings: Vec::new(),
            author_embeddings: Vec::new(),
            post_age_buckets: Vec::new(),
        };
        let pad = CandidateItem::default();
        for (r, items) in rows.iter().enumerate() {
            if items.len() > count {
                return Err(EngineError::Input(format!(
                    "row {r} has {} candidates, more than the {count} slots",
                    items.len()
                )));
            }
            for item in items
                .iter()
                .chain(std::iter::repeat_n(&pad, count - items.len()))
            {
                self.lookup(
                    EntityKind::Post,
                    item.post_id,
                    hi,
                    &mut c.post_hashes,
                    gather.then_some(&mut c.post_embeddings),
                );
                self.lookup(
                    EntityKind::Author,
                    if item.post_id == 0 { 0 } else { item.author_id },
                    ha,
                    &mut c.author_hashes,
                    gather.then_some(&mut c.author_embeddings),
                );
                c.product_surface.push(i64::from(item.product_surface));
                if let Some(age) = cfg.post_age {
                    c.post_age_buckets
                        .push(age.bucket(item.impression_s, item.created_s));
                }
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_id_is_padding_and_hashes_are_in_range() {
        assert_eq!(entity_hashes(EntityKind::Post, 0, 3, 100), vec![0, 0, 0]);
        for id in 1..2000i64 {
            for h in entity_hashes(EntityKind::Post, id, 4, 17) {
                assert!((1..17).contains(&h), "id {id} hash {h}");
            }
        }
    }

    #[test]
    fn hash_is_stable_and_kinds_differ() {
        // Pinned values (computed independently): changing the hash silently
        // would invalidate every trained table.
        assert_eq!(
            entity_hashes(EntityKind::User, 42, 2, 65536),
            vec![4392, 17260]
        );
        let u = entity_hashes(EntityKind::User, 42, 2, 1 << 20);
        let p = entity_hashes(EntityKind::Post, 42, 2, 1 << 20);
        assert_ne!(u, p);
        assert_ne!(u[0], u[1], "the k functions must differ");
        assert_eq!(mix(0), 0);
        // A negative id hashes its two's-complement bits.
        let rows = 1u64 << 16;
        let want: Vec<i64> = (0..2u64)
            .map(|i| {
                let h = mix(u64::MAX ^ EntityKind::Author.salt() ^ mix(i + 1)) % (rows - 1);
                1 + i64::try_from(h).expect("below 2^16")
            })
            .collect();
        assert_eq!(entity_hashes(EntityKind::Author, -1, 2, 1 << 16), want);
        assert_eq!(mix(1), 0x5692_161d_100b_05e5);
    }
}
