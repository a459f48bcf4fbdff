//! `foryou phoenix serve`, `eval`, `init` and `pipeline`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use foryou_engine::FpropDtype;
use foryou_engine::artifacts::pipeline::PipelineOptions;
use foryou_engine::fixture::{EvalOptions, RankerPath, eval_dir_with_inputs};
use foryou_engine::init::{Preset, preset_config, write_random_model};
use foryou_engine::tensor_io::{OutTensor, SafetensorsFile, write_tensors};

/// Ranker computation path.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PathArg {
    /// The dense, explicitly masked reference computation (the test oracle).
    Dense,
    /// Context computed once, candidates attend to its cached K/V (no T x T mask).
    Fast,
}

/// Forward dtype.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DtypeArg {
    /// f32 everywhere.
    F32,
    /// bf16 activations and matmuls, f32 norms/softmax/RoPE angles (the reference's bf16 policy).
    Bf16,
}

/// Model preset.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PresetArg {
    /// The fixtures' demo shape: D 128, 2 layers, 2/2 heads, S 32, C 8.
    Demo,
    /// Mid benchmark shape: D 512, 4 layers, 8/2 heads, S 256, C 256.
    Mid,
    /// Production-like: D 2560, 8 layers, 20/4 heads of 128, S 1024, C 1400.
    ProdLike,
}

/// Phoenix subcommands.
#[derive(Debug, Subcommand)]
pub enum PhoenixCommand {
    /// Serve PhoenixRanker and PhoenixRetrieval over gRPC (what `foryou
    /// serve --phoenix-addr` calls).
    Serve(Box<foryou_server::config::PhoenixServeConfig>),
    /// Run the model on a directory in the reference fixture format and write
    /// its outputs (same tensor names and shapes as the fixture's outputs).
    Eval {
        /// Directory with config.json, params.safetensors and inputs.safetensors.
        #[arg(long)]
        fixture: PathBuf,
        /// Output safetensors file.
        #[arg(long)]
        out: PathBuf,
        /// Ranker path (the retriever has one path).
        #[arg(long, value_enum, default_value = "fast")]
        path: PathArg,
        /// Forward dtype; defaults to the config's fprop_dtype.
        #[arg(long, value_enum)]
        dtype: Option<DtypeArg>,
        /// Inputs file to use instead of DIR/inputs.safetensors (e.g. a variant).
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// Fast path: score candidates this many slots at a time (same result).
        #[arg(long)]
        chunk: Option<usize>,
        /// Retrieval: number of results; defaults to the config's top_k.
        #[arg(long)]
        top_k: Option<usize>,
        /// Where the ranker runs: `cpu` or `cuda[:N]` (a GPU that cannot be
        /// used is an error).
        #[arg(long, default_value = "cpu")]
        device: foryou_engine::ComputeDevice,
    },
    /// X's `run_pipeline.py` over a released artifact directory (May 2026):
    /// retrieve the viewer's top posts from the corpus, rank them in chunks,
    /// order by the weighted score and print the script's table.
    Pipeline {
        /// The artifact directory (`retrieval/` and `ranker/` with
        /// config.json, model_params.npz, embedding_tables.npz).
        #[arg(long)]
        artifacts: PathBuf,
        /// The viewer's sequence JSON (default: DIR/example_sequence.json).
        #[arg(long)]
        sequence: Option<PathBuf>,
        /// The corpus npz (default: DIR/sports_corpus.npz).
        #[arg(long)]
        corpus: Option<PathBuf>,
        /// Posts retrieved.
        #[arg(long, default_value_t = 200)]
        top_k_retrieval: usize,
        /// Rows printed.
        #[arg(long, default_value_t = 30)]
        top_k_display: usize,
        /// Forward dtype of both models (bf16, as the script runs).
        #[arg(long, value_enum, default_value = "bf16")]
        dtype: DtypeArg,
        /// Also write the run's numbers as JSON: retrieved_post_ids,
        /// retrieved_scores, ranker_probs [K, A], weighted_scores,
        /// ranked_post_ids.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Write config.json + params.safetensors (with hash tables) holding seeded
    /// random weights whose outputs are not trivial.
    Init {
        /// Model shape.
        #[arg(long, value_enum)]
        preset: PresetArg,
        /// RNG seed; the same seed gives the same file.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Rows of each hash table (user, post, author). Default: 65536 for
        /// prod-like, 16384 otherwise (a demo model stays small and quick to write).
        #[arg(long)]
        table_rows: Option<usize>,
    },
}

/// Runs a phoenix subcommand.
pub fn run(command: PhoenixCommand) -> anyhow::Result<()> {
    match command {
        PhoenixCommand::Serve(cfg) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(foryou_server::roles::phoenix::run_phoenix(
                *cfg,
                foryou_server::roles::shutdown::shutdown_signal(),
            ))?;
            Ok(())
        }
        PhoenixCommand::Eval {
            fixture,
            out,
            path,
            dtype,
            inputs,
            chunk,
            top_k,
            device,
        } => {
            let opts = EvalOptions {
                path: match path {
                    PathArg::Dense => RankerPath::Dense,
                    PathArg::Fast => RankerPath::Fast,
                },
                dtype: dtype.map(|d| match d {
                    DtypeArg::F32 => FpropDtype::F32,
                    DtypeArg::Bf16 => FpropDtype::Bf16,
                }),
                chunk,
                top_k,
                device,
                device_options: foryou_engine::DeviceOptions::default(),
            };
            let inputs = inputs.unwrap_or_else(|| fixture.join("inputs.safetensors"));
            eval(&fixture, &inputs, &out, &opts)
        }
        PhoenixCommand::Pipeline {
            artifacts,
            sequence,
            corpus,
            top_k_retrieval,
            top_k_display,
            dtype,
            json,
        } => pipeline(
            &artifacts,
            sequence.as_deref(),
            corpus.as_deref(),
            &PipelineOptions {
                top_k_retrieval,
                top_k_display,
                dtype: match dtype {
                    DtypeArg::F32 => FpropDtype::F32,
                    DtypeArg::Bf16 => FpropDtype::Bf16,
                },
            },
            json.as_deref(),
        ),
        PhoenixCommand::Init {
            preset,
            seed,
            out,
            table_rows,
        } => init(preset, seed, &out, table_rows),
    }
}

fn eval(dir: &Path, inputs: &Path, out: &Path, opts: &EvalOptions) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let tensors = eval_dir_with_inputs(dir, inputs, opts)
        .with_context(|| format!("evaluating {}", dir.display()))?;
    let elapsed = started.elapsed();
    write_tensors(out, &tensors).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "wrote {} tensors to {} in {:.1} ms",
        tensors.len(),
        out.display(),
        elapsed.as_secs_f64() * 1e3
    );
    // When the inputs sit next to reference outputs, say how close we are.
    let reference = inputs.with_file_name("outputs.safetensors");
    if reference.exists() {
        compare(&tensors, &reference)?;
    }
    Ok(())
}

/// Prints max |ours - reference| per tensor.
fn compare(ours: &[OutTensor], reference: &Path) -> anyhow::Result<()> {
    let file = SafetensorsFile::open(reference)?;
    println!("compared with {}:", reference.display());
    for t in ours {
        if !file.contains(&t.name) {
            continue;
        }
        let want: Vec<f64> = match file.read_f32(&t.name, None) {
            Ok(f) => f.data.into_iter().map(f64::from).collect(),
            Err(_) => file
                .read_int(&t.name, None)?
                .data
                .into_iter()
                .map(|v| v as f64)
                .collect(),
        };
        let got = t.values_f64();
        if got.len() != want.len() {
            println!("  {:<34} shape differs", t.name);
            continue;
        }
        let d = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        println!("  {:<34} max |diff| {d:.3e}", t.name);
    }
    Ok(())
}

fn init(preset: PresetArg, seed: u64, out: &Path, table_rows: Option<usize>) -> anyhow::Result<()> {
    let preset = match preset {
        PresetArg::Demo => Preset::Demo,
        PresetArg::Mid => Preset::Mid,
        PresetArg::ProdLike => Preset::ProdLike,
    };
    let rows = table_rows.unwrap_or(if preset == Preset::ProdLike {
        65_536
    } else {
        16_384
    });
    let cfg = preset_config(preset);
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} writing params [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    let summary = write_random_model(out, &cfg, seed, rows, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .with_context(|| format!("writing model to {}", out.display()))?;
    bar.finish_and_clear();
    println!(
        "wrote {} tensors ({:.1} MB) to {}",
        summary.tensors,
        summary.bytes as f64 / 1e6,
        out.display()
    );
    Ok(())
}

/// Runs `foryou phoenix pipeline`: the table on stdout, JSON when asked.
fn pipeline(
    dir: &Path,
    sequence: Option<&Path>,
    corpus: Option<&Path>,
    opts: &PipelineOptions,
    json: Option<&Path>,
) -> anyhow::Result<()> {
    let r = foryou_engine::artifacts::pipeline::run_dir(dir, sequence, corpus, opts)
        .with_context(|| format!("running the pipeline on {}", dir.display()))?;
    print!(
        "{}",
        foryou_engine::artifacts::pipeline::table(&r, opts.top_k_display)
    );
    if let Some(path) = json {
        let ranked: Vec<i64> = r.ranked.iter().map(|&i| r.retrieved[i].post_id).collect();
        let out = serde_json::json!({
            "retrieved_post_ids": r.retrieved.iter().map(|p| p.post_id).collect::<Vec<_>>(),
            "retrieved_scores": r.retrieved.iter().map(|p| p.score).collect::<Vec<_>>(),
            "ranker_probs": r.ranker_probs,
            "weighted_scores": r.weighted,
            "ranked_post_ids": ranked,
        });
        std::fs::write(path, serde_json::to_string_pretty(&out)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
