//! Model inputs: the reference's `RecsysBatch` (hashes, actions, product
//! surfaces) together with its `RecsysEmbeddings` (looked-up hash embeddings),
//! split into the user side (user + history) and the candidate side.
//!
//! Row-major host arrays; the model turns them into tensors. [`RecsysInputs::validate`]
//! is the single gate for bad input (shapes, NaN, negative hashes, product
//! surface ids outside `[0, V)`).

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};
use crate::tensor_io::SafetensorsFile;

/// User token and history of `batch` users, each with `history_len` slots.
#[derive(Debug, Clone, PartialEq)]
pub struct UserInputs {
    /// B.
    pub batch: usize,
    /// S (padded history length).
    pub history_len: usize,
    /// `[B, Hu]`; the user is padding when column 0 is 0.
    pub user_hashes: Vec<i64>,
    /// `[B, S, Hi]`; a history slot is padding when column 0 is 0.
    pub history_post_hashes: Vec<i64>,
    /// `[B, S, Ha]` (not read by the model).
    pub history_author_hashes: Vec<i64>,
    /// `[B, S, A]`, 1.0 where the user took the action.
    pub history_actions: Vec<f32>,
    /// `[B, S]` ids in `[0, V)`.
    pub history_product_surface: Vec<i64>,
    /// `[B, Hu, D]`.
    pub user_embeddings: Vec<f32>,
    /// `[B, S, Hi, D]`.
    pub history_post_embeddings: Vec<f32>,
    /// `[B, S, Ha, D]`.
    pub history_author_embeddings: Vec<f32>,
    /// May 2026: `[B, S]` dwell seconds of each history item (column 1 of
    /// the reference's `history_continuous_actions`); empty = all 0.
    pub history_dwell: Vec<f32>,
    /// May 2026: `[B, num_ip_hashes, D]` IP-hash embeddings summed into the
    /// user token; empty = none.
    pub user_ip_embeddings: Vec<f32>,
}

/// `count` candidates for each of `batch` users.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateInputs {
    /// B.
    pub batch: usize,
    /// C.
    pub count: usize,
    /// `[B, C, Hi]`; a candidate is padding when column 0 is 0.
    pub post_hashes: Vec<i64>,
    /// `[B, C, Ha]` (not read by the model).
    pub author_hashes: Vec<i64>,
    /// `[B, C]` ids in `[0, V)`.
    pub product_surface: Vec<i64>,
    /// `[B, C, Hi, D]`.
    pub post_embeddings: Vec<f32>,
    /// `[B, C, Ha, D]`.
    pub author_embeddings: Vec<f32>,
    /// May 2026: `[B, C]` post-age buckets (`PostAgeConfig::bucket`);
    /// empty = all 0 (age unknown).
    pub post_age_buckets: Vec<i64>,
}

/// A full model batch.
#[derive(Debug, Clone, PartialEq)]
pub struct RecsysInputs {
    /// User + history side.
    pub user: UserInputs,
    /// Candidate side.
    pub candidates: CandidateInputs,
}

/// Rows `rows` of `data` (`row_len` wide); empty data stays empty (the
/// embeddings of hash-only inputs).
fn pick<T: Copy>(data: &[T], row_len: usize, rows: &[usize]) -> Vec<T> {
    if data.is_empty() {
        return Vec::new();
    }
    rows.iter()
        .flat_map(|&r| data[r * row_len..(r + 1) * row_len].iter().copied())
        .collect()
}

/// Per row of `batch`, the `width`-wide items at `slots` out of `count`.
fn pick_slots<T: Copy>(
    data: &[T],
    batch: usize,
    count: usize,
    width: usize,
    slots: &[usize],
) -> Vec<T> {
    if data.is_empty() {
        return Vec::new();
    }
    (0..batch)
        .flat_map(|b| {
            slots.iter().flat_map(move |&c| {
                data[(b * count + c) * width..(b * count + c + 1) * width]
                    .iter()
                    .copied()
            })
        })
        .collect()
}

impl UserInputs {
    /// Whether user `b` is a real user (first hash non-zero).
    pub fn user_valid(&self, cfg: &ModelConfig, b: usize) -> bool {
        self.user_hashes[b * cfg.num_user_hashes] != 0
    }

    /// Whether history slot `s` of row `b` holds a post.
    pub fn history_valid(&self, cfg: &ModelConfig, b: usize, s: usize) -> bool {
        self.history_post_hashes[(b * self.history_len + s) * cfg.num_item_hashes] != 0
    }

    /// Token validity of `[user | history]`, `[B, 1 + S]`.
    pub fn context_valid(&self, cfg: &ModelConfig) -> Vec<bool> {
        let mut out = Vec::with_capacity(self.batch * (1 + self.history_len));
        for b in 0..self.batch {
            out.push(self.user_valid(cfg, b));
            out.extend((0..self.history_len).map(|s| self.history_valid(cfg, b, s)));
        }
        out
    }

    /// Checks lengths, finiteness and id ranges of the user side.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<()> {
        self.validate_ids(cfg)?;
        let (b, s, d) = (self.batch, self.history_len, cfg.emb_size);
        let (hu, hi, ha) = (
            cfg.num_user_hashes,
            cfg.num_item_hashes,
            cfg.num_author_hashes,
        );
        check_len("user_embeddings", self.user_embeddings.len(), &[b, hu, d])?;
        check_len(
            "history_post_embeddings",
            self.history_post_embeddings.len(),
            &[b, s, hi, d],
        )?;
        check_len(
            "history_author_embeddings",
            self.history_author_embeddings.len(),
            &[b, s, ha, d],
        )?;
        check_finite("user_embeddings", &self.user_embeddings)?;
        check_finite("history_post_embeddings", &self.history_post_embeddings)?;
        check_finite("history_author_embeddings", &self.history_author_embeddings)?;
        if !self.user_ip_embeddings.is_empty() {
            check_len(
                "user_ip_embeddings",
                self.user_ip_embeddings.len(),
                &[b, cfg.num_ip_hashes, d],
            )?;
            check_finite("user_ip_embeddings", &self.user_ip_embeddings)?;
        }
        Ok(())
    }

    /// Checks everything but the embeddings: the whole of hash-only inputs
    /// (embeddings left empty, to be gathered from tables on the device).
    pub fn validate_ids(&self, cfg: &ModelConfig) -> Result<()> {
        let (b, s) = (self.batch, self.history_len);
        let (hu, hi, ha, a) = (
            cfg.num_user_hashes,
            cfg.num_item_hashes,
            cfg.num_author_hashes,
            cfg.num_actions,
        );
        if b == 0 {
            return Err(EngineError::Input("batch size is 0".into()));
        }
        check_len("user_hashes", self.user_hashes.len(), &[b, hu])?;
        check_len(
            "history_post_hashes",
            self.history_post_hashes.len(),
            &[b, s, hi],
        )?;
        check_len(
            "history_author_hashes",
            self.history_author_hashes.len(),
            &[b, s, ha],
        )?;
        check_len("history_actions", self.history_actions.len(), &[b, s, a])?;
        check_len(
            "history_product_surface",
            self.history_product_surface.len(),
            &[b, s],
        )?;
        check_hashes("user_hashes", &self.user_hashes)?;
        check_hashes("history_post_hashes", &self.history_post_hashes)?;
        check_hashes("history_author_hashes", &self.history_author_hashes)?;
        check_surface(
            "history_product_surface",
            &self.history_product_surface,
            cfg,
        )?;
        check_finite("history_actions", &self.history_actions)?;
        if !self.history_dwell.is_empty() {
            check_len("history_dwell", self.history_dwell.len(), &[b, s])?;
            check_finite("history_dwell", &self.history_dwell)?;
        }
        Ok(())
    }

    /// The rows `rows` of the batch, in that order.
    pub fn select_rows(&self, cfg: &ModelConfig, rows: &[usize]) -> Self {
        let (s, d) = (self.history_len, cfg.emb_size);
        let (hu, hi, ha) = (
            cfg.num_user_hashes,
            cfg.num_item_hashes,
            cfg.num_author_hashes,
        );
        Self {
            batch: rows.len(),
            history_len: s,
            user_hashes: pick(&self.user_hashes, hu, rows),
            history_post_hashes: pick(&self.history_post_hashes, s * hi, rows),
            history_author_hashes: pick(&self.history_author_hashes, s * ha, rows),
            history_actions: pick(&self.history_actions, s * cfg.num_actions, rows),
            history_product_surface: pick(&self.history_product_surface, s, rows),
            user_embeddings: pick(&self.user_embeddings, hu * d, rows),
            history_post_embeddings: pick(&self.history_post_embeddings, s * hi * d, rows),
            history_author_embeddings: pick(&self.history_author_embeddings, s * ha * d, rows),
            history_dwell: pick(&self.history_dwell, s, rows),
            user_ip_embeddings: pick(&self.user_ip_embeddings, cfg.num_ip_hashes * d, rows),
        }
    }
}

impl CandidateInputs {
    /// Whether candidate `c` of row `b` is a real candidate.
    pub fn valid(&self, cfg: &ModelConfig, b: usize, c: usize) -> bool {
        self.post_hashes[(b * self.count + c) * cfg.num_item_hashes] != 0
    }

    /// Validity of every slot, `[B, C]`.
    pub fn valid_mask(&self, cfg: &ModelConfig) -> Vec<bool> {
        (0..self.batch * self.count)
            .map(|i| self.post_hashes[i * cfg.num_item_hashes] != 0)
            .collect()
    }

    /// The rows `rows` of the batch, in that order.
    pub fn select_rows(&self, cfg: &ModelConfig, rows: &[usize]) -> Self {
        let (c, d) = (self.count, cfg.emb_size);
        let (hi, ha) = (cfg.num_item_hashes, cfg.num_author_hashes);
        Self {
            batch: rows.len(),
            count: c,
            post_hashes: pick(&self.post_hashes, c * hi, rows),
            author_hashes: pick(&self.author_hashes, c * ha, rows),
            product_surface: pick(&self.product_surface, c, rows),
            post_embeddings: pick(&self.post_embeddings, c * hi * d, rows),
            author_embeddings: pick(&self.author_embeddings, c * ha * d, rows),
            post_age_buckets: pick(&self.post_age_buckets, c, rows),
        }
    }

    /// Candidate slots `c0..c1` of every row.
    pub fn slots(&self, cfg: &ModelConfig, c0: usize, c1: usize) -> Self {
        self.gather_slots(cfg, &(c0..c1).collect::<Vec<_>>())
    }

    /// The candidates at `slots` (any order, repeats allowed) of every row;
    /// every index must be below `count`.
    pub fn gather_slots(&self, cfg: &ModelConfig, slots: &[usize]) -> Self {
        let (b, c, d) = (self.batch, self.count, cfg.emb_size);
        let (hi, ha) = (cfg.num_item_hashes, cfg.num_author_hashes);
        Self {
            batch: b,
            count: slots.len(),
            post_hashes: pick_slots(&self.post_hashes, b, c, hi, slots),
            author_hashes: pick_slots(&self.author_hashes, b, c, ha, slots),
            product_surface: pick_slots(&self.product_surface, b, c, 1, slots),
            post_embeddings: pick_slots(&self.post_embeddings, b, c, hi * d, slots),
            author_embeddings: pick_slots(&self.author_embeddings, b, c, ha * d, slots),
            post_age_buckets: pick_slots(&self.post_age_buckets, b, c, 1, slots),
        }
    }

    /// Checks lengths, finiteness and id ranges.
    pub fn validate(&self, cfg: &ModelConfig, what: &str) -> Result<()> {
        self.validate_ids(cfg, what)?;
        let (b, c, d) = (self.batch, self.count, cfg.emb_size);
        let (hi, ha) = (cfg.num_item_hashes, cfg.num_author_hashes);
        check_len(
            &format!("{what}post_embeddings"),
            self.post_embeddings.len(),
            &[b, c, hi, d],
        )?;
        check_len(
            &format!("{what}author_embeddings"),
            self.author_embeddings.len(),
            &[b, c, ha, d],
        )?;
        check_finite(&format!("{what}post_embeddings"), &self.post_embeddings)?;
        check_finite(&format!("{what}author_embeddings"), &self.author_embeddings)
    }

    /// Checks everything but the embeddings (see [`UserInputs::validate_ids`]).
    pub fn validate_ids(&self, cfg: &ModelConfig, what: &str) -> Result<()> {
        let (b, c) = (self.batch, self.count);
        let (hi, ha) = (cfg.num_item_hashes, cfg.num_author_hashes);
        check_len(
            &format!("{what}post_hashes"),
            self.post_hashes.len(),
            &[b, c, hi],
        )?;
        check_len(
            &format!("{what}author_hashes"),
            self.author_hashes.len(),
            &[b, c, ha],
        )?;
        check_len(
            &format!("{what}product_surface"),
            self.product_surface.len(),
            &[b, c],
        )?;
        check_hashes(&format!("{what}post_hashes"), &self.post_hashes)?;
        check_hashes(&format!("{what}author_hashes"), &self.author_hashes)?;
        check_surface(
            &format!("{what}product_surface"),
            &self.product_surface,
            cfg,
        )?;
        if !self.post_age_buckets.is_empty() {
            let name = format!("{what}post_age_buckets");
            check_len(&name, self.post_age_buckets.len(), &[b, c])?;
            let p = cfg.post_age.map_or(1, |a| a.vocab) as i64;
            if let Some(i) = self
                .post_age_buckets
                .iter()
                .position(|x| !(0..p).contains(x))
            {
                return Err(EngineError::Input(format!(
                    "'{name}' holds bucket {} at flat index {i}, expected a bucket in [0, {p})",
                    self.post_age_buckets[i]
                )));
            }
        }
        Ok(())
    }
}

fn check_len(name: &str, len: usize, shape: &[usize]) -> Result<()> {
    let want: usize = shape.iter().product();
    if len != want {
        return Err(EngineError::Input(format!(
            "'{name}' has {len} elements, expected {want} for shape {shape:?}"
        )));
    }
    Ok(())
}

fn check_finite(name: &str, data: &[f32]) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(EngineError::Input(format!(
            "'{name}' holds a non-finite value ({}) at flat index {i}",
            data[i]
        ))),
        None => Ok(()),
    }
}

fn check_hashes(name: &str, data: &[i64]) -> Result<()> {
    match data.iter().position(|&v| v < 0 || v > i64::from(i32::MAX)) {
        Some(i) => Err(EngineError::Input(format!(
            "'{name}' holds hash {} at flat index {i}, expected 0 (padding) or a positive 32-bit value",
            data[i]
        ))),
        None => Ok(()),
    }
}

fn check_surface(name: &str, data: &[i64], cfg: &ModelConfig) -> Result<()> {
    let v = cfg.product_surface_vocab_size as i64;
    match data.iter().position(|&x| !(0..v).contains(&x)) {
        Some(i) => Err(EngineError::Input(format!(
            "'{name}' holds product-surface id {} at flat index {i}, expected an id in [0, {v})",
            data[i]
        ))),
        None => Ok(()),
    }
}

impl RecsysInputs {
    /// Checks every array against the config: lengths, finiteness, id ranges,
    /// and that user and candidate sides agree on the batch size.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<()> {
        self.user.validate(cfg)?;
        if self.candidates.batch != self.user.batch {
            return Err(EngineError::Input(format!(
                "candidates have batch size {}, user inputs {}",
                self.candidates.batch, self.user.batch
            )));
        }
        self.candidates.validate(cfg, "candidate_")
    }

    /// Reads a fixture-format `inputs.safetensors`. B, S and C come from the
    /// file (they may differ from the config's nominal sizes); every other
    /// dimension must match the config. The result is validated.
    pub fn from_safetensors(file: &SafetensorsFile, cfg: &ModelConfig) -> Result<Self> {
        let user = UserInputs::from_safetensors(file, cfg)?;
        let candidates =
            CandidateInputs::from_safetensors(file, cfg, "candidate_", Some(user.batch))?;
        let inputs = Self { user, candidates };
        inputs.validate(cfg)?;
        Ok(inputs)
    }
}

impl UserInputs {
    /// Reads the user side of a fixture-format inputs file and validates it.
    pub fn from_safetensors(file: &SafetensorsFile, cfg: &ModelConfig) -> Result<Self> {
        let (d, hu, hi, ha, a) = (
            cfg.emb_size,
            cfg.num_user_hashes,
            cfg.num_item_hashes,
            cfg.num_author_hashes,
            cfg.num_actions,
        );
        let uh = file.read_int("user_hashes", None)?;
        let b = match uh.shape.as_slice() {
            [b, h] if *h == hu => *b,
            other => {
                return Err(EngineError::Input(format!(
                    "{}: tensor 'user_hashes' has shape {other:?}, expected [B, {hu}]",
                    file.path().display()
                )));
            }
        };
        let hph = file.read_int("history_post_hashes", None)?;
        let s = match hph.shape.as_slice() {
            [bb, s, h] if *bb == b && *h == hi => *s,
            other => {
                return Err(EngineError::Input(format!(
                    "{}: tensor 'history_post_hashes' has shape {other:?}, expected [{b}, S, {hi}]",
                    file.path().display()
                )));
            }
        };
        let user = Self {
            batch: b,
            history_len: s,
            user_hashes: uh.data,
            history_post_hashes: hph.data,
            history_author_hashes: file
                .read_int("history_author_hashes", Some(&[b, s, ha]))?
                .data,
            history_actions: file.read_f32("history_actions", Some(&[b, s, a]))?.data,
            history_product_surface: file
                .read_int("history_product_surface", Some(&[b, s]))?
                .data,
            user_embeddings: file.read_f32("user_embeddings", Some(&[b, hu, d]))?.data,
            history_post_embeddings: file
                .read_f32("history_post_embeddings", Some(&[b, s, hi, d]))?
                .data,
            history_author_embeddings: file
                .read_f32("history_author_embeddings", Some(&[b, s, ha, d]))?
                .data,
            history_dwell: dwell_column(file, b, s)?,
            user_ip_embeddings: if cfg.num_ip_hashes > 0 && file.contains("user_ip_embeddings") {
                file.read_f32("user_ip_embeddings", Some(&[b, cfg.num_ip_hashes, d]))?
                    .data
            } else {
                Vec::new()
            },
        };
        user.validate(cfg)?;
        Ok(user)
    }
}

impl CandidateInputs {
    /// Reads the five candidate arrays `{prefix}post_hashes`, ... of a
    /// fixture-format file and validates them; `batch` is checked when given.
    pub fn from_safetensors(
        file: &SafetensorsFile,
        cfg: &ModelConfig,
        prefix: &str,
        batch: Option<usize>,
    ) -> Result<Self> {
        let (d, hi, ha) = (cfg.emb_size, cfg.num_item_hashes, cfg.num_author_hashes);
        let name = format!("{prefix}post_hashes");
        let shape = file.shape(&name)?;
        let (b, c) = match shape.as_slice() {
            [b, c, h] if *h == hi && batch.is_none_or(|want| want == *b) => (*b, *c),
            other => {
                return Err(EngineError::Input(format!(
                    "{}: tensor '{name}' has shape {other:?}, expected [{}, C, {hi}]",
                    file.path().display(),
                    batch.map_or("B".to_string(), |b| b.to_string())
                )));
            }
        };
        let cands = Self {
            batch: b,
            count: c,
            post_hashes: file.read_int(&name, Some(&[b, c, hi]))?.data,
            author_hashes: file
                .read_int(&format!("{prefix}author_hashes"), Some(&[b, c, ha]))?
                .data,
            product_surface: file
                .read_int(&format!("{prefix}product_surface"), Some(&[b, c]))?
                .data,
            post_embeddings: file
                .read_f32(&format!("{prefix}post_embeddings"), Some(&[b, c, hi, d]))?
                .data,
            author_embeddings: file
                .read_f32(&format!("{prefix}author_embeddings"), Some(&[b, c, ha, d]))?
                .data,
            post_age_buckets: post_age_buckets(file, cfg, prefix, b, c)?,
        };
        cands.validate(cfg, prefix)?;
        Ok(cands)
    }
}

/// Column 1 (dwell seconds) of an optional `history_continuous_actions`
/// `[B, S, NC]`, as `[B, S]`; empty when the file has none.
fn dwell_column(file: &SafetensorsFile, b: usize, s: usize) -> Result<Vec<f32>> {
    const NAME: &str = "history_continuous_actions";
    if !file.contains(NAME) {
        return Ok(Vec::new());
    }
    let t = file.read_f32(NAME, None)?;
    match t.shape.as_slice() {
        [bb, ss, nc] if *bb == b && *ss == s && *nc >= 2 => {
            Ok(t.data.chunks_exact(*nc).map(|row| row[1]).collect())
        }
        other => Err(EngineError::Input(format!(
            "{}: tensor '{NAME}' has shape {other:?}, expected [{b}, {s}, NC >= 2]",
            file.path().display()
        ))),
    }
}

/// Post-age buckets from optional `{prefix}impr_ts` and
/// `{prefix}post_creation_ts` (`[B, C]` unix seconds); empty unless the
/// model has the post-age block and the file has both.
fn post_age_buckets(
    file: &SafetensorsFile,
    cfg: &ModelConfig,
    prefix: &str,
    b: usize,
    c: usize,
) -> Result<Vec<i64>> {
    let (impr, created) = (
        format!("{prefix}impr_ts"),
        format!("{prefix}post_creation_ts"),
    );
    match cfg.post_age {
        Some(age) if file.contains(&impr) && file.contains(&created) => {
            let impr = file.read_int(&impr, Some(&[b, c]))?.data;
            let created = file.read_int(&created, Some(&[b, c]))?.data;
            Ok(impr
                .iter()
                .zip(&created)
                .map(|(&i, &p)| age.bucket(i, p))
                .collect())
        }
        _ => Ok(Vec::new()),
    }
}
