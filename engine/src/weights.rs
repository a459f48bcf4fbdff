//! Model parameters under the reference (haiku) names.
//!
//! [`param_specs`] lists every tensor a config needs with its shape; loading
//! checks the file against that list, so a missing, extra or misshaped tensor
//! is an error that names it. Hash tables (ours, see `hash_embed`) may ride in
//! the same file under [`HASH_TABLE_NAMES`].

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::config::{ModelConfig, ModelKind};
use crate::error::{EngineError, Result};
use crate::hash_embed::HashTables;
use crate::tensor_io::SafetensorsFile;

/// Names of the three hash-embedding tables `[rows, D]` (user, post, author).
pub const HASH_TABLE_NAMES: [&str; 3] = [
    "hash_embeddings/user_table",
    "hash_embeddings/post_table",
    "hash_embeddings/author_table",
];

/// How a parameter is initialised by `foryou phoenix init` (the fixtures' recipe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamInit {
    /// RMSNorm gain: 1 + 0.1 N(0, 1).
    NormScale,
    /// Plain N(0, 1) (product-surface table).
    Normal,
    /// N(0, 1) / sqrt(first dimension), so unit-variance inputs give unit-variance outputs.
    FanIn,
}

/// One expected parameter: reference name, shape and init rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// haiku name, e.g. `transformer/decoder_layer_0/linear/w`.
    pub name: String,
    /// Expected shape.
    pub shape: Vec<usize>,
    /// Init rule for random weights.
    pub init: ParamInit,
}

/// Row-major f32 values of a tensor.
pub(crate) fn host(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// `[R, a] | [R, b] | ...` side by side: one `[R, a + b + ...]` row-major
/// matrix, so fused projections (q|k|v, gelu|lin) are one product.
pub(crate) fn concat_columns(parts: &[&Tensor]) -> Result<Vec<f32>> {
    let rows = parts.first().map_or(Ok(0), |t| t.dim(0))?;
    let data: Vec<(usize, Vec<f32>)> = parts
        .iter()
        .map(|t| Ok((t.dim(1)?, host(t)?)))
        .collect::<Result<_>>()?;
    let width: usize = data.iter().map(|(w, _)| w).sum();
    let mut out = Vec::with_capacity(rows * width);
    for r in 0..rows {
        for (w, d) in &data {
            out.extend_from_slice(&d[r * w..(r + 1) * w]);
        }
    }
    Ok(out)
}

fn spec(name: String, shape: Vec<usize>, init: ParamInit) -> ParamSpec {
    ParamSpec { name, shape, init }
}

/// Prefix of the non-transformer parameters for a model kind.
pub fn model_prefix(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Ranker => "phoenix_model",
        ModelKind::Retrieval => "phoenix_retrieval_model",
    }
}

const TOWER: &str = "~build_candidate_representation/candidate_tower";

/// D-wide blocks of a history token before `proj_mat_3`: post and author
/// hash embeddings, actions, product surface, and (May 2026) dwell.
pub fn history_blocks(cfg: &ModelConfig) -> usize {
    cfg.num_item_hashes + cfg.num_author_hashes + 2 + usize::from(cfg.continuous.is_some())
}

/// D-wide blocks of a candidate token before `proj_mat_2`: post and author
/// hash embeddings, product surface, and (May 2026) post age.
pub fn candidate_blocks(cfg: &ModelConfig) -> usize {
    cfg.num_item_hashes + cfg.num_author_hashes + 1 + usize::from(cfg.post_age.is_some())
}

/// Every parameter the config's model reads, sorted by name.
pub fn param_specs(cfg: &ModelConfig) -> Vec<ParamSpec> {
    use ParamInit::*;
    let d = cfg.emb_size;
    let (hu, hi, ha) = (
        cfg.num_user_hashes,
        cfg.num_item_hashes,
        cfg.num_author_hashes,
    );
    let p = model_prefix(cfg.kind);
    let mut out = vec![
        spec(
            format!("{p}/action_projection"),
            vec![cfg.num_actions, d],
            FanIn,
        ),
        spec(
            format!("{p}/product_surface_embedding_table"),
            vec![cfg.product_surface_vocab_size, d],
            Normal,
        ),
        spec(format!("{p}/proj_mat_1"), vec![hu * d, d], FanIn),
        spec(
            format!("{p}/proj_mat_3"),
            vec![history_blocks(cfg) * d, d],
            FanIn,
        ),
    ];
    if let Some(age) = cfg.post_age {
        out.push(spec(
            format!("{p}/post_age_embedding_table"),
            vec![age.vocab, d],
            Normal,
        ));
    }
    if let Some(c) = cfg.continuous {
        out.extend([
            spec(
                format!("{p}/history_dwell_time_proj1"),
                vec![1, c.hidden],
                FanIn,
            ),
            spec(
                format!("{p}/history_dwell_time_proj2"),
                vec![c.hidden, d],
                FanIn,
            ),
            spec(
                format!("{p}/continuous_unembeddings"),
                vec![d, c.num_actions],
                FanIn,
            ),
        ]);
    }
    match cfg.kind {
        ModelKind::Ranker => {
            out.push(spec(
                format!("{p}/proj_mat_2"),
                vec![candidate_blocks(cfg) * d, d],
                FanIn,
            ));
            out.push(spec(format!("{p}/rms_norm/scale"), vec![d], NormScale));
            out.push(spec(
                format!("{p}/unembeddings"),
                vec![d, cfg.num_actions],
                FanIn,
            ));
        }
        ModelKind::Retrieval if cfg.candidate_tower_projection => {
            out.push(spec(
                format!("{p}/{TOWER}/candidate_tower_projection_1"),
                vec![(hi + ha) * d, 2 * d],
                FanIn,
            ));
            out.push(spec(
                format!("{p}/{TOWER}/candidate_tower_projection_2"),
                vec![2 * d, d],
                FanIn,
            ));
        }
        ModelKind::Retrieval => {}
    }
    let (q, kv, f) = (
        cfg.num_q_heads * cfg.key_size,
        cfg.num_kv_heads * cfg.key_size,
        cfg.ffn_size,
    );
    for i in 0..cfg.num_layers {
        let l = format!("transformer/decoder_layer_{i}");
        out.extend([
            spec(format!("{l}/linear/w"), vec![d, f], FanIn),
            spec(format!("{l}/linear_1/w"), vec![f, d], FanIn),
            spec(format!("{l}/linear_v/w"), vec![d, f], FanIn),
            spec(
                format!("{l}/multi_head_attention/key/w"),
                vec![d, kv],
                FanIn,
            ),
            spec(
                format!("{l}/multi_head_attention/linear/w"),
                vec![q, d],
                FanIn,
            ),
            spec(
                format!("{l}/multi_head_attention/query/w"),
                vec![d, q],
                FanIn,
            ),
            spec(
                format!("{l}/multi_head_attention/value/w"),
                vec![d, kv],
                FanIn,
            ),
            spec(format!("{l}/rms_norm/scale"), vec![d], NormScale),
            spec(format!("{l}/rms_norm_1/scale"), vec![d], NormScale),
            spec(format!("{l}/rms_norm_2/scale"), vec![d], NormScale),
            spec(format!("{l}/rms_norm_3/scale"), vec![d], NormScale),
        ]);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Parameters of one decoder layer (`y = x @ w` for every matrix).
#[derive(Debug, Clone)]
pub struct LayerWeights {
    /// Pre-attention RMSNorm gain `[D]`.
    pub attn_norm: Tensor,
    /// Query projection `[D, Hq*K]`.
    pub wq: Tensor,
    /// Key projection `[D, Hkv*K]`.
    pub wk: Tensor,
    /// Value projection `[D, Hkv*K]`.
    pub wv: Tensor,
    /// Attention output projection `[Hq*K, D]`.
    pub wo: Tensor,
    /// Post-attention RMSNorm gain `[D]`.
    pub attn_out_norm: Tensor,
    /// Pre-FFN RMSNorm gain `[D]`.
    pub ffn_norm: Tensor,
    /// FFN GELU branch `[D, F]`.
    pub w_gelu: Tensor,
    /// FFN linear branch `[D, F]`.
    pub w_lin: Tensor,
    /// FFN down projection `[F, D]`.
    pub w_down: Tensor,
    /// Post-FFN RMSNorm gain `[D]`.
    pub ffn_out_norm: Tensor,
}

/// Ranker-only parameters.
#[derive(Debug, Clone)]
pub struct RankerHead {
    /// Candidate token projection `[(Hi+Ha+1)*D, D]` (one more block with
    /// the post age).
    pub proj_candidate: Tensor,
    /// Final RMSNorm gain `[D]`.
    pub final_norm: Tensor,
    /// Output head `[D, A]`.
    pub unembeddings: Tensor,
    /// May 2026: post-age table `[P, D]`.
    pub post_age_table: Option<Tensor>,
    /// May 2026: continuous head `[D, NC]`.
    pub continuous_unembeddings: Option<Tensor>,
}

/// May 2026: the dwell MLP of history tokens, `gelu(v * proj_1[0]) @ proj_2`.
#[derive(Debug, Clone)]
pub struct DwellWeights {
    /// `[1, H]`.
    pub proj_1: Tensor,
    /// `[H, D]`.
    pub proj_2: Tensor,
}

/// Retrieval-only parameters (the candidate tower).
#[derive(Debug, Clone)]
pub struct CandidateTowerWeights {
    /// `[(Hi+Ha)*D, 2D]`.
    pub proj_1: Tensor,
    /// `[2D, D]`.
    pub proj_2: Tensor,
}

/// The head of the network specific to the model kind.
#[derive(Debug, Clone)]
pub enum HeadWeights {
    /// Ranker.
    Ranker(RankerHead),
    /// Retrieval: the candidate tower's MLP, or `None` for the mean-pool
    /// tower (May 2026 `enable_linear_proj: false`, no parameters).
    Retrieval(Option<CandidateTowerWeights>),
}

/// All parameters of a Phoenix model, as f32 tensors on the CPU.
#[derive(Debug, Clone)]
pub struct PhoenixWeights {
    /// Signed engagement projection `[A, D]`.
    pub action_projection: Tensor,
    /// Product-surface table `[V, D]`.
    pub product_surface_table: Tensor,
    /// User token projection `[Hu*D, D]`.
    pub proj_user: Tensor,
    /// History token projection `[(Hi+Ha+2)*D, D]`.
    pub proj_history: Tensor,
    /// Decoder layers.
    pub layers: Vec<LayerWeights>,
    /// Ranker head or candidate tower.
    pub head: HeadWeights,
    /// May 2026 ranker: the dwell MLP.
    pub dwell: Option<DwellWeights>,
    /// Hash tables, when the file carries them.
    pub hash_tables: Option<HashTables>,
}

impl PhoenixWeights {
    /// The ranker's head, or an error for a retriever's weights.
    pub fn ranker_head(&self) -> Result<&RankerHead> {
        match &self.head {
            HeadWeights::Ranker(h) => Ok(h),
            HeadWeights::Retrieval(_) => Err(EngineError::Input(
                "weights carry a retrieval head, expected a ranker head".into(),
            )),
        }
    }

    /// The retriever's candidate-tower MLP (`None`: the mean-pool tower),
    /// or an error for a ranker's weights.
    pub fn candidate_tower(&self) -> Result<Option<&CandidateTowerWeights>> {
        match &self.head {
            HeadWeights::Retrieval(t) => Ok(t.as_ref()),
            HeadWeights::Ranker(_) => Err(EngineError::Input(
                "weights carry a ranker head, expected a candidate tower".into(),
            )),
        }
    }

    /// Loads and checks every parameter of `cfg` from a safetensors file
    /// (with its hash tables, when it has them).
    pub fn load(path: &Path, cfg: &ModelConfig) -> Result<Self> {
        let file = SafetensorsFile::open(path)?;
        let shapes: BTreeMap<String, Vec<usize>> = file
            .entries()
            .into_iter()
            .map(|(name, (_, shape))| (name, shape))
            .collect();
        let mut w = Self::from_params(cfg, path, &shapes, &HASH_TABLE_NAMES, |name| {
            Ok(file.read_f32(name, None)?.data)
        })?;
        w.hash_tables = HashTables::from_file(&file, cfg)?;
        Ok(w)
    }

    /// Checks and reads every parameter of `cfg` from a store whose tensors
    /// have `shapes` (by reference name), `read` giving a tensor's values;
    /// names in `ignored` may be present and are not read. No hash tables.
    /// `path` names the store in errors.
    pub fn from_params(
        cfg: &ModelConfig,
        path: &Path,
        shapes: &BTreeMap<String, Vec<usize>>,
        ignored: &[&str],
        mut read: impl FnMut(&str) -> Result<Vec<f32>>,
    ) -> Result<Self> {
        let specs = param_specs(cfg);
        let err = |message: String| EngineError::Weights {
            path: path.display().to_string(),
            message,
        };
        let entries = shapes;
        for s in &specs {
            match entries.get(&s.name) {
                None => {
                    return Err(err(format!(
                        "missing tensor '{}' (expected shape {:?})",
                        s.name, s.shape
                    )));
                }
                Some(shape) if *shape != s.shape => {
                    return Err(err(format!(
                        "tensor '{}' has shape {:?}, expected {:?}",
                        s.name, shape, s.shape
                    )));
                }
                Some(_) => {}
            }
        }
        for (name, shape) in entries {
            let known = specs.iter().any(|s| &s.name == name) || ignored.contains(&name.as_str());
            if !known {
                return Err(err(format!(
                    "unexpected tensor '{name}' with shape {shape:?} (not a parameter of this {:?} config)",
                    cfg.kind
                )));
            }
        }
        let mut get = |name: &str| -> Result<Tensor> {
            let data = read(name)?;
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(err(format!(
                    "tensor '{name}' holds a non-finite value at element {i}"
                )));
            }
            let shape = entries.get(name).cloned().unwrap_or_default();
            Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
        };
        let p = model_prefix(cfg.kind);
        let layers = (0..cfg.num_layers)
            .map(|i| {
                let l = format!("transformer/decoder_layer_{i}");
                Ok(LayerWeights {
                    attn_norm: get(&format!("{l}/rms_norm/scale"))?,
                    wq: get(&format!("{l}/multi_head_attention/query/w"))?,
                    wk: get(&format!("{l}/multi_head_attention/key/w"))?,
                    wv: get(&format!("{l}/multi_head_attention/value/w"))?,
                    wo: get(&format!("{l}/multi_head_attention/linear/w"))?,
                    attn_out_norm: get(&format!("{l}/rms_norm_1/scale"))?,
                    ffn_norm: get(&format!("{l}/rms_norm_2/scale"))?,
                    w_gelu: get(&format!("{l}/linear/w"))?,
                    w_lin: get(&format!("{l}/linear_v/w"))?,
                    w_down: get(&format!("{l}/linear_1/w"))?,
                    ffn_out_norm: get(&format!("{l}/rms_norm_3/scale"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let may = cfg.continuous.is_some();
        let head = match cfg.kind {
            ModelKind::Ranker => HeadWeights::Ranker(RankerHead {
                proj_candidate: get(&format!("{p}/proj_mat_2"))?,
                final_norm: get(&format!("{p}/rms_norm/scale"))?,
                unembeddings: get(&format!("{p}/unembeddings"))?,
                post_age_table: cfg
                    .post_age
                    .map(|_| get(&format!("{p}/post_age_embedding_table")))
                    .transpose()?,
                continuous_unembeddings: may
                    .then(|| get(&format!("{p}/continuous_unembeddings")))
                    .transpose()?,
            }),
            ModelKind::Retrieval => HeadWeights::Retrieval(
                cfg.candidate_tower_projection
                    .then(|| -> Result<_> {
                        Ok(CandidateTowerWeights {
                            proj_1: get(&format!("{p}/{TOWER}/candidate_tower_projection_1"))?,
                            proj_2: get(&format!("{p}/{TOWER}/candidate_tower_projection_2"))?,
                        })
                    })
                    .transpose()?,
            ),
        };
        let dwell = may
            .then(|| -> Result<_> {
                Ok(DwellWeights {
                    proj_1: get(&format!("{p}/history_dwell_time_proj1"))?,
                    proj_2: get(&format!("{p}/history_dwell_time_proj2"))?,
                })
            })
            .transpose()?;
        Ok(Self {
            action_projection: get(&format!("{p}/action_projection"))?,
            product_surface_table: get(&format!("{p}/product_surface_embedding_table"))?,
            proj_user: get(&format!("{p}/proj_mat_1"))?,
            proj_history: get(&format!("{p}/proj_mat_3"))?,
            layers,
            head,
            dwell,
            hash_tables: None,
        })
    }
}
