//! Model configuration: [`PhoenixConfig`] is the `config.json` of the reference
//! fixtures (same key names), [`ModelConfig`] is the validated runtime form.
//!
//! Unknown keys are rejected so that a typo never silently falls back to a
//! default; the fixtures' metadata keys (seeds, padding descriptors, generator
//! statistics) are accepted and ignored.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};

/// Which of the two Phoenix models a config describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// The ranker: user + history + candidates -> per-action logits.
    #[default]
    Ranker,
    /// The two-tower retriever: user tower, candidate tower, top-k.
    Retrieval,
}

/// Floating-point type of the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum FpropDtype {
    /// Everything in f32.
    #[default]
    #[serde(rename = "float32")]
    F32,
    /// bf16 activations and matmuls with f32 norms, softmax and RoPE angles,
    /// rounded where the reference rounds (see `model::precision`).
    #[serde(rename = "bfloat16")]
    Bf16,
}

impl std::str::FromStr for FpropDtype {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "f32" | "float32" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            other => Err(format!("unknown dtype '{other}', expected f32 or bf16")),
        }
    }
}

/// RoPE position given to candidate tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CandidatePositions {
    /// Candidate in slot `c` sits at position `1 + S + c`, as in the reference.
    #[default]
    Absolute,
    /// Every candidate sits at position `1 + S`: its score no longer depends on
    /// its slot or on the other candidates.
    Shared,
}

/// GELU flavour of the FFN gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeluKind {
    /// `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`, jax.nn.gelu's default.
    Tanh,
    /// `0.5 x (1 + erf(x / sqrt 2))`.
    Erf,
}

/// `config.json` as written by the reference fixtures and by `foryou phoenix init`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoenixConfig {
    /// D, the model width.
    pub emb_size: usize,
    /// K, the per-head key (and value) size.
    pub key_size: usize,
    /// Number of query heads.
    pub num_q_heads: usize,
    /// Number of key/value heads (grouped-query attention).
    pub num_kv_heads: usize,
    /// Number of decoder layers.
    pub num_layers: usize,
    /// FFN widening factor; the hidden width is derived from it (see [`ffn_size`]).
    pub widening_factor: f64,
    /// Multiplier applied to q.k (the only scaling of the logits).
    pub attn_output_multiplier: f64,
    /// S, the nominal history length (inputs may use another length).
    pub history_seq_len: usize,
    /// C, the nominal number of candidates (inputs may use another count).
    pub candidate_seq_len: usize,
    /// A, the number of predicted actions.
    pub num_actions: usize,
    /// V, size of the product-surface vocabulary.
    pub product_surface_vocab_size: usize,
    /// Hash functions per user.
    pub num_user_hashes: usize,
    /// Hash functions per post.
    pub num_item_hashes: usize,
    /// Hash functions per author.
    pub num_author_hashes: usize,
    /// Forward-pass dtype.
    #[serde(default)]
    pub fprop_dtype: FpropDtype,
    /// FFN hidden width; must equal the width derived from the widening factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ffn_size: Option<usize>,
    /// Ranker or retrieval.
    #[serde(default)]
    pub model_kind: ModelKind,
    /// RMSNorm epsilon.
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base.
    #[serde(default = "default_rope_base")]
    pub rope_base: f64,
    /// Attention logit soft-cap `c * tanh(x / c)`; `null` turns it off.
    #[serde(default = "default_softcap")]
    pub attn_logit_softcap: Option<f64>,
    /// Value written over masked logits (the reference uses -1e30, not -inf).
    #[serde(default = "default_mask_fill")]
    pub attn_mask_fill: f64,
    /// GELU flavour: a string containing "tanh" (default) or "erf"/"exact".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gelu: Option<String>,
    /// Names of the actions, in logit order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_names: Option<Vec<String>>,
    /// Clamp of the squared norm in the retriever's L2 normalisation.
    #[serde(default = "default_l2_eps")]
    pub l2_norm_eps_on_squared_norm: f64,
    /// RoPE position of candidates (our option; the reference is `absolute`).
    #[serde(default)]
    pub candidate_positions: CandidatePositions,
    /// May 2026: IP-hash embeddings per user, summed into the user token
    /// (0: none).
    #[serde(default)]
    pub num_ip_hashes: usize,
    /// May 2026: a flag of the reference's config the model never reads
    /// (IP embeddings are used whenever given and `num_ip_hashes` > 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_ip_address: Option<bool>,
    /// May 2026 ranker: post-age bucket width, minutes; with the
    /// continuous keys it turns on the post-age and dwell blocks and the
    /// continuous head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_age_granularity_mins: Option<u32>,
    /// May 2026: the reference's constant 4800 (checked when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_age_max_minutes: Option<u32>,
    /// May 2026: `4800 / granularity + 2` (checked when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_age_vocab_size: Option<usize>,
    /// May 2026 ranker: width of the continuous head (and of the
    /// continuous-action input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_continuous_actions: Option<usize>,
    /// May 2026 ranker: hidden width of the dwell MLP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuous_action_hidden_dim: Option<usize>,
    /// May 2026 ranker: dwell normalisation scale, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuous_norm_scale: Option<f64>,
    /// May 2026 ranker: normalise dwell by `log1p` instead of linearly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuous_norm_use_log: Option<bool>,
    /// May 2026 ranker: RoPE positions anchored at the end of the history,
    /// every candidate at `1 + S`, padded tokens at 0.
    #[serde(default)]
    pub right_anchored_rope: bool,
    /// May 2026: a training flag the forward pass never reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_neg_feedback_on_negatives: Option<bool>,
    /// May 2026: names of the continuous actions (metadata).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuous_action_names: Option<Vec<String>>,
    /// May 2026: the continuous-action column holding dwell seconds; the
    /// reference reads column 1 (checked when present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dwell_time_continuous_index: Option<usize>,
    /// May 2026 retrieval: the candidate tower's MLP (`true`, the default)
    /// or a mean over the hash embeddings (`false`, no parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_linear_proj: Option<bool>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional_inputs_present: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional_inputs_absent: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_age_buckets: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_files_sha256: Option<serde_json::Value>,
    /// Retrieval: number of results the fixture asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    /// T of the fixture's batch; checked against the nominal sizes when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_len: Option<usize>,
    /// 1 + S for the ranker; checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_start_offset: Option<usize>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_name: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_seed: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_seed: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_history_lengths: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_history_mask: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_candidate_mask: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tower_valid_candidate_mask: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_valid: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_holes: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub padded_rows_embeddings: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_stats: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus_size: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus_seed: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus_recipe: Option<serde_json::Value>,
    /// Fixture metadata, accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tower_batch_shape: Option<serde_json::Value>,
}

fn default_rms_eps() -> f64 {
    1e-5
}
fn default_rope_base() -> f64 {
    10_000.0
}
fn default_softcap() -> Option<f64> {
    Some(30.0)
}
fn default_mask_fill() -> f64 {
    -1e30
}
fn default_l2_eps() -> f64 {
    1e-12
}

/// The reference's FFN width: `int(widening * D) * 2 // 3`, rounded up to a multiple of 8.
pub fn ffn_size(emb_size: usize, widening_factor: f64) -> usize {
    let f = ((widening_factor * emb_size as f64) as usize) * 2 / 3;
    f.div_ceil(8) * 8
}

/// The reference's post-age horizon, minutes (a constant there).
pub const POST_AGE_MAX_MINUTES: i64 = 4800;

/// May 2026 ranker: the post-age block of candidate tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostAgeConfig {
    /// Bucket width G, minutes.
    pub granularity_mins: i64,
    /// Rows of `post_age_embedding_table`: `4800 / G + 2` (bucket 0 is
    /// missing or negative, the last one is overflow).
    pub vocab: usize,
}

impl PostAgeConfig {
    /// The bucket of a candidate seen at `impression_s` and created at
    /// `created_s` (unix seconds), as the reference computes it in integer
    /// arithmetic: `age_min = floor((impression - created) / 60)`, bucket
    /// `age_min / G + 1` clipped to `[0, 4800 / G + 1]`, and 0 when the age
    /// is negative or either timestamp is 0 (missing).
    pub fn bucket(&self, impression_s: i64, created_s: i64) -> i64 {
        if impression_s == 0 || created_s == 0 {
            return 0;
        }
        let age_min = impression_s.saturating_sub(created_s).div_euclid(60);
        if age_min < 0 {
            return 0;
        }
        let overflow = POST_AGE_MAX_MINUTES / self.granularity_mins + 1;
        (age_min / self.granularity_mins + 1).clamp(0, overflow)
    }
}

/// How dwell seconds are normalised before the dwell MLP.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContinuousConfig {
    /// NC, width of the continuous head.
    pub num_actions: usize,
    /// H, hidden width of the dwell MLP.
    pub hidden: usize,
    /// Dwell is clipped to `[0, norm_scale]` seconds.
    pub norm_scale: f32,
    /// `log1p(clip) / log1p(scale)` instead of `clip / scale`.
    pub use_log: bool,
}

impl ContinuousConfig {
    /// The normalised dwell value fed to the dwell MLP.
    pub fn normalize(&self, dwell_s: f32) -> f32 {
        let c = dwell_s.clamp(0.0, self.norm_scale);
        if self.use_log {
            c.ln_1p() / self.norm_scale.ln_1p()
        } else {
            c / self.norm_scale
        }
    }
}

/// Validated runtime configuration; every size is non-zero and consistent.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Ranker or retrieval.
    pub kind: ModelKind,
    /// D.
    pub emb_size: usize,
    /// K (key and value size per head).
    pub key_size: usize,
    /// Query heads.
    pub num_q_heads: usize,
    /// Key/value heads.
    pub num_kv_heads: usize,
    /// Decoder layers.
    pub num_layers: usize,
    /// FFN hidden width F.
    pub ffn_size: usize,
    /// Logit multiplier.
    pub attn_output_multiplier: f32,
    /// Nominal history length S.
    pub history_seq_len: usize,
    /// Nominal candidate count C.
    pub candidate_seq_len: usize,
    /// A.
    pub num_actions: usize,
    /// Product-surface vocabulary size.
    pub product_surface_vocab_size: usize,
    /// Hu.
    pub num_user_hashes: usize,
    /// Hi.
    pub num_item_hashes: usize,
    /// Ha.
    pub num_author_hashes: usize,
    /// Forward dtype named in the config (the CLI may override it).
    pub fprop_dtype: FpropDtype,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f32,
    /// RoPE base.
    pub rope_base: f32,
    /// Soft-cap of the attention logits, if any.
    pub attn_logit_softcap: Option<f32>,
    /// Fill value of masked logits.
    pub attn_mask_fill: f32,
    /// GELU flavour.
    pub gelu: GeluKind,
    /// Clamp of squared norms in L2 normalisation.
    pub l2_eps: f32,
    /// Candidate RoPE positions.
    pub candidate_positions: CandidatePositions,
    /// Retrieval top-k asked for by the config, if any.
    pub top_k: Option<usize>,
    /// May 2026 ranker: post-age block (with `continuous`, or neither).
    pub post_age: Option<PostAgeConfig>,
    /// May 2026 ranker: dwell block and continuous head.
    pub continuous: Option<ContinuousConfig>,
    /// IP-hash embeddings per user summed into the user token (0: none).
    pub num_ip_hashes: usize,
    /// Right-anchored RoPE positions (May 2026).
    pub right_anchored_rope: bool,
    /// Retrieval: the candidate tower's MLP (`false`: mean pool).
    pub candidate_tower_projection: bool,
}

impl ModelConfig {
    /// Reads and validates a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Parses and validates JSON text; `origin` names the source in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Self> {
        let raw: PhoenixConfig = serde_json::from_str(text).map_err(|e| EngineError::Config {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        raw.validate().map_err(|message| EngineError::Config {
            path: origin.to_string(),
            message,
        })
    }

    /// Query heads per key/value head.
    pub fn group_size(&self) -> usize {
        self.num_q_heads / self.num_kv_heads
    }
}

impl PhoenixConfig {
    /// Checks every field and derives the runtime config; the error names the field.
    pub fn validate(&self) -> std::result::Result<ModelConfig, String> {
        let nonzero = [
            ("emb_size", self.emb_size),
            ("key_size", self.key_size),
            ("num_q_heads", self.num_q_heads),
            ("num_kv_heads", self.num_kv_heads),
            ("num_layers", self.num_layers),
            ("history_seq_len", self.history_seq_len),
            ("num_actions", self.num_actions),
            (
                "product_surface_vocab_size",
                self.product_surface_vocab_size,
            ),
            ("num_user_hashes", self.num_user_hashes),
            ("num_item_hashes", self.num_item_hashes),
            ("num_author_hashes", self.num_author_hashes),
        ];
        for (name, value) in nonzero {
            if value == 0 {
                return Err(format!("field '{name}' is 0, expected a positive size"));
            }
        }
        if self.model_kind == ModelKind::Ranker && self.candidate_seq_len == 0 {
            return Err("field 'candidate_seq_len' is 0, expected a positive size".into());
        }
        if !self.num_q_heads.is_multiple_of(self.num_kv_heads) {
            return Err(format!(
                "field 'num_q_heads' ({}) is not a multiple of 'num_kv_heads' ({})",
                self.num_q_heads, self.num_kv_heads
            ));
        }
        if !self.key_size.is_multiple_of(2) {
            return Err(format!(
                "field 'key_size' ({}) is odd, expected an even size (RoPE rotates half-dimensions)",
                self.key_size
            ));
        }
        if !(self.widening_factor.is_finite() && self.widening_factor > 0.0) {
            return Err(format!(
                "field 'widening_factor' ({}) must be a positive number",
                self.widening_factor
            ));
        }
        let derived = ffn_size(self.emb_size, self.widening_factor);
        if derived == 0 {
            return Err(format!(
                "field 'widening_factor' ({}) gives an FFN width of 0 for emb_size {}",
                self.widening_factor, self.emb_size
            ));
        }
        if let Some(f) = self.ffn_size
            && f != derived
        {
            return Err(format!(
                "field 'ffn_size' ({f}) disagrees with emb_size {} and widening_factor {} (expected {derived})",
                self.emb_size, self.widening_factor
            ));
        }
        let positive_finite = [
            ("attn_output_multiplier", self.attn_output_multiplier),
            ("rms_norm_eps", self.rms_norm_eps),
            ("rope_base", self.rope_base),
            (
                "l2_norm_eps_on_squared_norm",
                self.l2_norm_eps_on_squared_norm,
            ),
        ];
        for (name, value) in positive_finite {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!(
                    "field '{name}' ({value}) must be a positive number"
                ));
            }
        }
        if let Some(cap) = self.attn_logit_softcap
            && !(cap.is_finite() && cap > 0.0)
        {
            return Err(format!(
                "field 'attn_logit_softcap' ({cap}) must be a positive number or null"
            ));
        }
        if !(self.attn_mask_fill.is_finite() && self.attn_mask_fill < -1e9) {
            return Err(format!(
                "field 'attn_mask_fill' ({}) must be a large negative number such as -1e30",
                self.attn_mask_fill
            ));
        }
        let gelu = match self.gelu.as_deref() {
            None => GeluKind::Tanh,
            Some(s) if s.contains("tanh") => GeluKind::Tanh,
            Some(s) if s.contains("erf") || s.contains("exact") => GeluKind::Erf,
            Some(other) => {
                return Err(format!(
                    "field 'gelu' ('{other}') is neither a tanh approximation nor exact (erf)"
                ));
            }
        };
        if let Some(names) = &self.action_names
            && names.len() != self.num_actions
        {
            return Err(format!(
                "field 'action_names' has {} names, expected num_actions = {}",
                names.len(),
                self.num_actions
            ));
        }
        let context = 1 + self.history_seq_len;
        let expected_t = match self.model_kind {
            ModelKind::Ranker => context + self.candidate_seq_len,
            ModelKind::Retrieval => context,
        };
        if let Some(t) = self.seq_len
            && t != expected_t
        {
            return Err(format!(
                "field 'seq_len' ({t}) disagrees with 1 + history_seq_len (+ candidate_seq_len for the ranker) = {expected_t}"
            ));
        }
        if let Some(off) = self.candidate_start_offset
            && off != context
        {
            return Err(format!(
                "field 'candidate_start_offset' ({off}) must be 1 + history_seq_len = {context}"
            ));
        }
        if self.top_k == Some(0) {
            return Err("field 'top_k' is 0, expected a positive count".into());
        }
        let (post_age, continuous) = self.may_ranker()?;
        Ok(ModelConfig {
            kind: self.model_kind,
            emb_size: self.emb_size,
            key_size: self.key_size,
            num_q_heads: self.num_q_heads,
            num_kv_heads: self.num_kv_heads,
            num_layers: self.num_layers,
            ffn_size: derived,
            attn_output_multiplier: self.attn_output_multiplier as f32,
            history_seq_len: self.history_seq_len,
            candidate_seq_len: self.candidate_seq_len,
            num_actions: self.num_actions,
            product_surface_vocab_size: self.product_surface_vocab_size,
            num_user_hashes: self.num_user_hashes,
            num_item_hashes: self.num_item_hashes,
            num_author_hashes: self.num_author_hashes,
            fprop_dtype: self.fprop_dtype,
            rms_norm_eps: self.rms_norm_eps as f32,
            rope_base: self.rope_base as f32,
            attn_logit_softcap: self.attn_logit_softcap.map(|c| c as f32),
            attn_mask_fill: self.attn_mask_fill as f32,
            gelu,
            l2_eps: self.l2_norm_eps_on_squared_norm as f32,
            candidate_positions: self.candidate_positions,
            top_k: self.top_k,
            post_age,
            continuous,
            num_ip_hashes: self.num_ip_hashes,
            right_anchored_rope: self.right_anchored_rope,
            candidate_tower_projection: self.enable_linear_proj.unwrap_or(true),
        })
    }

    /// The May 2026 ranker's blocks: both (a May ranker always has the
    /// post-age table, the dwell MLP and the continuous head) or neither.
    fn may_ranker(
        &self,
    ) -> std::result::Result<(Option<PostAgeConfig>, Option<ContinuousConfig>), String> {
        let post_age = match self.post_age_granularity_mins {
            None => None,
            Some(0) => return Err("field 'post_age_granularity_mins' is 0".into()),
            Some(g) => {
                let g = i64::from(g);
                let vocab = usize::try_from(POST_AGE_MAX_MINUTES / g + 2).unwrap_or(2);
                if let Some(m) = self.post_age_max_minutes
                    && i64::from(m) != POST_AGE_MAX_MINUTES
                {
                    return Err(format!(
                        "field 'post_age_max_minutes' ({m}) must be {POST_AGE_MAX_MINUTES}"
                    ));
                }
                if let Some(v) = self.post_age_vocab_size
                    && v != vocab
                {
                    return Err(format!(
                        "field 'post_age_vocab_size' ({v}) disagrees with 4800 / post_age_granularity_mins + 2 = {vocab}"
                    ));
                }
                Some(PostAgeConfig {
                    granularity_mins: g,
                    vocab,
                })
            }
        };
        let continuous = match (
            self.num_continuous_actions,
            self.continuous_action_hidden_dim,
        ) {
            (None, None) => None,
            (Some(nc), Some(h)) if nc > 0 && h > 0 => {
                let scale = self.continuous_norm_scale.unwrap_or(30.0);
                if !(scale.is_finite() && scale > 0.0) {
                    return Err(format!(
                        "field 'continuous_norm_scale' ({scale}) must be a positive number"
                    ));
                }
                if let Some(i) = self.dwell_time_continuous_index
                    && i != 1
                {
                    return Err(format!(
                        "field 'dwell_time_continuous_index' ({i}) must be 1 (the column the reference reads)"
                    ));
                }
                Some(ContinuousConfig {
                    num_actions: nc,
                    hidden: h,
                    norm_scale: scale as f32,
                    use_log: self.continuous_norm_use_log.unwrap_or(false),
                })
            }
            _ => {
                return Err("fields 'num_continuous_actions' and 'continuous_action_hidden_dim' must both be positive, or both absent".into());
            }
        };
        match (self.model_kind, post_age.is_some(), continuous.is_some()) {
            (ModelKind::Ranker, true, true) | (_, false, false) => Ok((post_age, continuous)),
            (ModelKind::Retrieval, _, _) => Err(
                "the May 2026 ranker keys (post_age_granularity_mins, num_continuous_actions) do not apply to a retrieval model".into(),
            ),
            (ModelKind::Ranker, _, _) => Err(
                "a May 2026 ranker needs both 'post_age_granularity_mins' and 'num_continuous_actions' with 'continuous_action_hidden_dim'".into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_json() -> serde_json::Value {
        serde_json::json!({
            "emb_size": 128, "key_size": 64, "num_q_heads": 2, "num_kv_heads": 2,
            "num_layers": 2, "widening_factor": 2, "attn_output_multiplier": 0.125,
            "history_seq_len": 32, "candidate_seq_len": 8, "num_actions": 19,
            "product_surface_vocab_size": 16, "num_user_hashes": 2, "num_item_hashes": 2,
            "num_author_hashes": 2, "fprop_dtype": "float32", "ffn_size": 176
        })
    }

    fn parse(v: serde_json::Value) -> Result<ModelConfig> {
        ModelConfig::from_json(&v.to_string(), "test.json")
    }

    #[test]
    fn ffn_size_matches_reference_rounding() {
        assert_eq!(ffn_size(128, 2.0), 176);
        assert_eq!(ffn_size(256, 4.0), 688);
        assert_eq!(ffn_size(2560, 2.0), 3416);
    }

    #[test]
    fn demo_config_parses() {
        let cfg = parse(demo_json()).expect("demo config is valid");
        assert_eq!(cfg.ffn_size, 176);
        assert_eq!(cfg.group_size(), 1);
        assert_eq!(cfg.attn_logit_softcap, Some(30.0));
    }

    fn error_of(v: serde_json::Value) -> String {
        match parse(v) {
            Ok(_) => panic!("config should have been rejected"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn rejects_unknown_field_by_name() {
        let mut v = demo_json();
        v["emb_sise"] = 3.into();
        assert!(error_of(v).contains("emb_sise"));
    }

    #[test]
    fn rejects_heads_not_dividing() {
        let mut v = demo_json();
        v["num_q_heads"] = 3.into();
        assert!(error_of(v).contains("num_q_heads"));
    }

    #[test]
    fn rejects_odd_key_size() {
        let mut v = demo_json();
        v["key_size"] = 63.into();
        assert!(error_of(v).contains("key_size"));
    }

    #[test]
    fn rejects_zero_sizes() {
        for field in ["emb_size", "num_layers", "num_kv_heads", "num_actions"] {
            let mut v = demo_json();
            v[field] = 0.into();
            assert!(error_of(v).contains(field), "{field}");
        }
    }

    #[test]
    fn rejects_inconsistent_ffn_size() {
        let mut v = demo_json();
        v["ffn_size"] = 200.into();
        assert!(error_of(v).contains("ffn_size"));
    }

    #[test]
    fn rejects_malformed_json() {
        let err = ModelConfig::from_json("{\"emb_size\": 12", "x.json")
            .expect_err("truncated json must fail")
            .to_string();
        assert!(err.contains("x.json"), "{err}");
    }

    #[test]
    fn post_age_buckets_follow_the_reference_integer_rules() {
        let hour = PostAgeConfig {
            granularity_mins: 60,
            vocab: 82,
        };
        let t = 1_778_000_000;
        for (age_s, want) in [
            (0, 1),
            (59, 1),
            (3599, 1),
            (3600, 2),
            (2 * 3600 + 1, 3),
            (4799 * 60 + 59, 80),
            (4800 * 60, 81),
            (90 * 3600, 81), // overflow
            (-30, 0),        // floor(-0.5 min) = -1: negative
            (-59, 0),
            (-2 * 3600, 0),
        ] {
            assert_eq!(hour.bucket(t, t - age_s), want, "age {age_s} s");
        }
        assert_eq!(hour.bucket(0, t), 0, "no impression time");
        assert_eq!(hour.bucket(t, 0), 0, "no creation time");
        // G = 7 does not divide 4800: overflow (686) starts at 685 * 7 = 4795 min.
        let week = PostAgeConfig {
            granularity_mins: 7,
            vocab: 687,
        };
        assert_eq!(week.bucket(t, t - 4794 * 60), 685);
        assert_eq!(week.bucket(t, t - 4795 * 60), 686);
        assert_eq!(week.bucket(t, t - 9999 * 60), 686);
    }

    #[test]
    fn dwell_is_clipped_then_normalised_linearly_or_by_log1p() {
        let mut c = ContinuousConfig {
            num_actions: 8,
            hidden: 4,
            norm_scale: 30.0,
            use_log: false,
        };
        assert_eq!(c.normalize(-1.0), 0.0);
        assert_eq!(c.normalize(15.0), 0.5);
        assert_eq!(c.normalize(120.0), 1.0);
        c.use_log = true;
        assert!((c.normalize(15.0) - 16f32.ln() / 31f32.ln()).abs() < 1e-7);
        assert_eq!(c.normalize(45.5), 1.0);
    }

    #[test]
    fn may_ranker_keys_come_together_and_are_checked() {
        let mut v = demo_json();
        v["post_age_granularity_mins"] = 60.into();
        v["num_continuous_actions"] = 8.into();
        v["continuous_action_hidden_dim"] = 64.into();
        v["post_age_vocab_size"] = 82.into();
        let cfg = parse(v.clone()).expect("a May ranker");
        assert_eq!(cfg.post_age.map(|a| a.vocab), Some(82));
        assert_eq!(
            cfg.continuous.map(|c| (c.num_actions, c.hidden)),
            Some((8, 64))
        );
        let mut bad = v.clone();
        bad["post_age_vocab_size"] = 81.into();
        assert!(error_of(bad).contains("post_age_vocab_size"));
        let mut half = v.clone();
        half.as_object_mut()
            .expect("object")
            .remove("num_continuous_actions");
        assert!(error_of(half).contains("num_continuous_actions"));
        let mut only_age = demo_json();
        only_age["post_age_granularity_mins"] = 60.into();
        assert!(error_of(only_age).contains("both"));
        let mut dwell_col = v;
        dwell_col["dwell_time_continuous_index"] = 2.into();
        assert!(error_of(dwell_col).contains("dwell_time_continuous_index"));
    }

    #[test]
    fn rejects_missing_field_by_name() {
        let mut v = demo_json();
        v.as_object_mut().expect("object").remove("key_size");
        assert!(error_of(v).contains("key_size"));
    }
}
