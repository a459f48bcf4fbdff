//! The GPU side: one [`Gpu`] per device (context, stream, cuBLAS, compiled
//! kernels), device buffers, and the launch wrappers of each kernel.
//!
//! Every kernel launch goes through a typed wrapper that checks shapes on
//! the host first, so a bad call is an error, never an out-of-bounds access.

pub mod attention;
pub mod attention_gemm;
pub mod gemm;
pub mod ops;
pub mod staging;
pub mod timing;
pub mod topk;

pub use cudarc;

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, DeviceRepr, ValidAsZeroBits,
};
use cudarc::nvrtc::{CompileOptions, Ptx};

use crate::sources::{ALL, KernelSource};

/// Why the GPU path is not available, or a GPU call failed.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// A CUDA library is missing or there is no usable device.
    #[error("GPU unavailable: {0}")]
    Unavailable(String),
    /// NVRTC rejected a kernel source.
    #[error("NVRTC could not compile {name}.cu for {arch}: {log}")]
    Compile {
        /// Source name.
        name: String,
        /// Target architecture.
        arch: String,
        /// The compiler's log.
        log: String,
    },
    /// A CUDA driver call failed.
    #[error("CUDA driver: {0}")]
    Driver(#[from] cudarc::driver::DriverError),
    /// A cuBLAS call failed.
    #[error("cuBLAS: {0}")]
    Blas(#[from] cudarc::cublas::result::CublasError),
    /// Arguments that do not fit the kernel's contract.
    #[error("bad kernel arguments: {0}")]
    Shape(String),
}

/// Result of GPU calls.
pub type GpuResult<T> = std::result::Result<T, GpuError>;

/// Whether the driver, NVRTC and cuBLAS libraries can be loaded; the reason
/// when not. Checked before any cudarc call, which would panic instead.
pub fn libraries_present() -> std::result::Result<(), String> {
    // SAFETY: these only try to dlopen the libraries.
    let (driver, nvrtc, blas) = unsafe {
        (
            cudarc::driver::sys::is_culib_present(),
            cudarc::nvrtc::sys::is_culib_present(),
            cudarc::cublas::sys::is_culib_present(),
        )
    };
    let missing: Vec<&str> = [
        (driver, "libcuda (the NVIDIA driver)"),
        (nvrtc, "libnvrtc"),
        (blas, "libcublas"),
    ]
    .into_iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, name)| name)
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("cannot load {}", missing.join(", ")))
    }
}

/// NVRTC's virtual architecture for a compute capability (PTX the driver
/// finishes for the exact chip at load).
pub fn arch_for(major: i32, minor: i32) -> GpuResult<&'static str> {
    Ok(match (major, minor) {
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90",
        (10, 0) => "compute_100",
        (12, 0) => "compute_120",
        (m, n) if m >= 8 => {
            return Err(GpuError::Unavailable(format!(
                "compute capability {m}.{n} has no kernel build target here"
            )));
        }
        (m, n) => {
            return Err(GpuError::Unavailable(format!(
                "compute capability {m}.{n} is below 8.0 (the kernels need bf16 tensor cores)"
            )));
        }
    })
}

/// Compiles one source to PTX with NVRTC (no device needed, only libnvrtc).
pub fn compile(src: &KernelSource, arch: &'static str) -> GpuResult<String> {
    // SAFETY: only dlopens.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(GpuError::Unavailable("cannot load libnvrtc".into()));
    }
    let opts = CompileOptions {
        arch: Some(arch),
        options: vec!["--std=c++17".into(), "-default-device".into()],
        name: Some(format!("{}.cu", src.name)),
        ..Default::default()
    };
    match cudarc::nvrtc::compile_ptx_with_opts(src.full_source(), opts) {
        Ok(ptx) => Ok(ptx.to_src()),
        Err(e) => Err(GpuError::Compile {
            name: src.name.into(),
            arch: arch.into(),
            log: match e {
                cudarc::nvrtc::CompileError::CompileError { log, .. } => {
                    log.to_string_lossy().into_owned()
                }
                other => other.to_string(),
            },
        }),
    }
}

/// One device: context, stream, cuBLAS handle and every kernel, compiled once.
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    blas: cudarc::cublas::CudaBlas,
    functions: HashMap<&'static str, CudaFunction>,
    name: String,
    arch: &'static str,
    sm_count: u32,
    /// Most dynamic shared memory a block may ask for on this device.
    smem_optin: usize,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("name", &self.name)
            .field("arch", &self.arch)
            .field("sm_count", &self.sm_count)
            .finish()
    }
}

impl Gpu {
    /// Opens device `ordinal`: checks the libraries, creates the context,
    /// compiles every kernel for the device with NVRTC and loads it.
    pub fn open(ordinal: usize) -> GpuResult<Self> {
        libraries_present().map_err(GpuError::Unavailable)?;
        let count = CudaContext::device_count()?;
        if ordinal >= count.max(0) as usize {
            return Err(GpuError::Unavailable(format!(
                "device cuda:{ordinal} requested, {count} present"
            )));
        }
        let ctx = CudaContext::new(ordinal)?;
        // SAFETY: every buffer of this wrapper lives on its one stream, so
        // cudarc's per-use events (a cost on every launch argument) guard
        // nothing here.
        unsafe { ctx.disable_event_tracking() };
        keep_pool_memory(&ctx)?;
        let (major, minor) = ctx.compute_capability()?;
        let arch = arch_for(major, minor)?;
        let stream = ctx.default_stream();
        let blas = cudarc::cublas::CudaBlas::new(stream.clone())?;
        let mut functions = HashMap::new();
        for src in ALL {
            let ptx = compile(&src, arch)?;
            let module = ctx.load_module(Ptx::from_src(ptx))?;
            for &k in src.kernels {
                functions.insert(k, module.load_function(k)?);
            }
        }
        // Kernels that take more than 48 KB of dynamic shared memory must
        // say so once; done here rather than on every launch.
        let limits = [
            ("attention_d32", attention::smem_bytes(32)),
            ("attention_d64", attention::smem_bytes(64)),
            ("attention_d128", attention::smem_bytes(128)),
            ("topk_select", 8 * topk::MAX_K),
        ];
        // Capped at what this device allows a block (227 KB on Hopper, less
        // on smaller chips); a launch needing more is refused by its wrapper.
        let smem_optin = ctx.attribute(
            cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
        )? as usize;
        for (name, bytes) in limits {
            if let Some(f) = functions.get(name) {
                f.set_attribute(
                    cudarc::driver::sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    bytes.min(smem_optin) as i32,
                )?;
            }
        }
        let sm_count = ctx.attribute(
            cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
        )? as u32;
        Ok(Self {
            name: ctx.name()?,
            ctx,
            stream,
            blas,
            functions,
            arch,
            sm_count,
            smem_optin,
        })
    }

    /// The device's name, e.g. "NVIDIA H100 80GB HBM3".
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The NVRTC target the kernels were built for.
    pub fn arch(&self) -> &'static str {
        self.arch
    }

    /// Streaming multiprocessors.
    pub fn sm_count(&self) -> u32 {
        self.sm_count
    }

    /// The stream every call of this wrapper runs on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.ctx
    }

    /// Fails unless a kernel's `bytes` of dynamic shared memory fit this device.
    pub(crate) fn check_smem(&self, what: &str, bytes: usize) -> GpuResult<()> {
        if bytes > self.smem_optin {
            return Err(GpuError::Shape(format!(
                "{what} needs {bytes} bytes of shared memory, this device allows {}",
                self.smem_optin
            )));
        }
        Ok(())
    }

    pub(crate) fn blas(&self) -> &cudarc::cublas::CudaBlas {
        &self.blas
    }

    pub(crate) fn function(&self, name: &str) -> GpuResult<&CudaFunction> {
        self.functions
            .get(name)
            .ok_or_else(|| GpuError::Shape(format!("no kernel named {name}")))
    }

    /// Copies `data` to a new device buffer (one undefined element when
    /// `data` is empty: CUDA has no zero-byte allocations, and every kernel
    /// wrapper bounds its reads by the shapes it is given).
    pub fn upload<T: DeviceRepr>(&self, data: &[T]) -> GpuResult<CudaSlice<T>> {
        if data.is_empty() {
            return self.scratch(1);
        }
        Ok(self.stream.clone_htod(data)?)
    }

    /// Copies a device buffer back (waits for the stream).
    pub fn download<T: DeviceRepr + Default + Clone>(
        &self,
        buf: &CudaSlice<T>,
    ) -> GpuResult<Vec<T>> {
        Ok(self.stream.clone_dtoh(buf)?)
    }

    /// A device buffer of `n` elements with undefined contents, for outputs
    /// a kernel overwrites entirely before anything reads them (the contract
    /// tests poison outputs to prove each kernel writes every element).
    pub fn scratch<T: DeviceRepr>(&self, n: usize) -> GpuResult<CudaSlice<T>> {
        // SAFETY: callers only pass buffers to kernels that write every
        // element before any read; the memory is plain device memory.
        Ok(unsafe { self.stream.alloc(n.max(1)) }?)
    }

    /// A zeroed device buffer of `n` elements.
    pub fn zeros<T: DeviceRepr + ValidAsZeroBits>(&self, n: usize) -> GpuResult<CudaSlice<T>> {
        Ok(self.stream.alloc_zeros(n.max(1))?)
    }

    /// Waits for all work queued so far.
    pub fn synchronize(&self) -> GpuResult<()> {
        Ok(self.stream.synchronize()?)
    }
}

/// Keeps freed memory in the device's default pool instead of returning it
/// at every synchronization (the default threshold is 0), so a forward
/// pass's activations are reused by the next one rather than mapped again.
fn keep_pool_memory(ctx: &CudaContext) -> GpuResult<()> {
    use cudarc::driver::sys;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    let mut threshold = u64::MAX;
    // SAFETY: plain driver calls on a live context's device; `threshold`
    // outlives the call that reads it.
    unsafe {
        sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device()).result()?;
        sys::cuMemPoolSetAttribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )
        .result()?;
    }
    Ok(())
}

/// bf16 bits of f32 values (round to nearest even), for upload.
pub fn bf16_bits(x: &[f32]) -> Vec<u16> {
    x.iter()
        .map(|&v| half::bf16::from_f32(v).to_bits())
        .collect()
}

/// f32 values of bf16 bits, after download.
pub fn bf16_values(bits: &[u16]) -> Vec<f32> {
    bits.iter()
        .map(|&b| half::bf16::from_bits(b).to_f32())
        .collect()
}

/// Fails with a message naming `what` when `len < want` (a buffer may be
/// larger than a call uses).
pub(crate) fn expect_len(what: &str, len: usize, want: usize) -> GpuResult<()> {
    if len < want {
        return Err(GpuError::Shape(format!(
            "{what} holds {len} elements, needs {want}"
        )));
    }
    Ok(())
}

/// An i32 kernel argument from a size, or an error naming it.
pub(crate) fn as_i32(what: &str, v: usize) -> GpuResult<i32> {
    i32::try_from(v).map_err(|_| GpuError::Shape(format!("{what} = {v} does not fit in i32")))
}
