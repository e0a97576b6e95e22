//! What every fuzz target shares: the allocation guard (this crate's global allocator, so it
//! is the whole binary's) and a scratch folder for the parsers that take a path. The targets
//! themselves are in `fuzz_targets/`; `scripts/fuzz.sh` builds and runs them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The largest single allocation a fuzz input may cause: 2 GiB. No parser may trust a length
/// field that far; libFuzzer's `-malloc_limit_mb` needs a sanitizer runtime, hence this guard.
pub const MAX_ALLOCATION: usize = 2 << 30;

/// The system allocator, aborting the process (which libFuzzer reports as a crash, saving the
/// input) on any single allocation or reallocation over [`MAX_ALLOCATION`] bytes.
pub struct CappedAllocator;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

/// Reports an allocation over the limit, with a backtrace, and aborts.
#[cold]
fn refuse(size: usize) -> ! {
    let _ = writeln!(
        std::io::stderr(),
        "==fuzz== ERROR: allocation of {size} bytes, over the {MAX_ALLOCATION}-byte limit \
         (a length field from the input trusted too far)\n{}",
        std::backtrace::Backtrace::force_capture()
    );
    std::process::abort()
}

// SAFETY: every call is forwarded to `System` with the same arguments; the guard only adds a
// size check before it.
unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            refuse(layout.size());
        }
        // SAFETY: the caller's contract for `alloc`, passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > MAX_ALLOCATION {
            refuse(layout.size());
        }
        // SAFETY: the caller's contract for `alloc_zeroed`, passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ALLOCATION {
            refuse(new_size);
        }
        // SAFETY: the caller's contract for `realloc`, passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc`, passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

unsafe extern "C" {
    /// libc's `atexit`: libFuzzer ends a run with `exit`, which runs these.
    fn atexit(callback: extern "C" fn()) -> i32;
}

static SCRATCH: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_scratch() {
    if let Some(dir) = SCRATCH.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// This process's scratch folder, made on first use in the temporary folder (`TMPDIR`;
/// `scripts/fuzz.sh` points it at `/dev/shm`) and removed when the process exits normally.
pub fn scratch_dir() -> &'static Path {
    SCRATCH.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("clinicadl-rs-fuzz-")
            .tempdir()
            .expect("a scratch folder in the temporary folder")
            .keep();
        // SAFETY: `remove_scratch` is a plain `extern "C" fn()` that lives for the whole
        // program, as `atexit` requires.
        unsafe { atexit(remove_scratch) };
        dir
    })
}

/// Writes `data` to the file `name` of the scratch folder (made if needed) and returns its
/// path: the way in for parsers that only take a path.
pub fn scratch_file(name: &str, data: &[u8]) -> PathBuf {
    let path = scratch_dir().join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("the scratch folder is writable");
    }
    std::fs::write(&path, data).expect("the scratch folder is writable");
    path
}

/// Whether two float slices hold the same values, bit for bit (NaNs included).
pub fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
