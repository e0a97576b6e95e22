//! The contract between the `clinicadl-rs` command and the engine it starts: the command stays
//! the engine's parent for the whole run, forwards the signals it receives (Ctrl-C, a scheduler's
//! SIGTERM), and turns a death by signal into a clear error. Two things pass between them, by
//! environment variables:
//!
//! - [`FRONT_PID`]: the command's pid. The engine asks to be killed when the command dies (a
//!   `kill -9` of the command must not leave the engine writing on), and names the command in
//!   the group lock: the run is the process the user started.
//! - [`MAPPED_FILES`]: a file where the engine lists the files it maps into memory (checkpoints,
//!   on the CPU). A mapped file truncated or rewritten under a run kills the engine with SIGBUS,
//!   which no error handling can catch; the command then names these files.
//! - [`OUTCOME`]: a file where the engine writes its exit code once its work is over (every
//!   output written, the lock released, its messages flushed); it then ends itself with SIGKILL,
//!   and the command exits with that code. An ordinary exit would run libtorch's static
//!   destructors first: about 80 ms of every run, with nothing left to do (the `_exit` that
//!   skips them is out of reach of safe Rust). A SIGKILL without that code is a kill.
//!
//! Compiled into the library (the engine's side) and, by path, into the command (which must not
//! link libtorch).

use std::io::Write;
use std::path::Path;

/// The pid of the `clinicadl-rs` command that started this engine.
pub const FRONT_PID: &str = "CLINICADL_RS_FRONT_PID";

/// The file where the engine lists the files it maps into memory, one path a line.
pub const MAPPED_FILES: &str = "CLINICADL_RS_MAPPED_FILES";

/// The file where the engine writes its exit code before it ends itself (see the module's notes).
pub const OUTCOME: &str = "CLINICADL_RS_OUTCOME";

/// The pid of the command that started this engine, when one did.
pub fn front_pid() -> Option<u32> {
    std::env::var(FRONT_PID).ok()?.parse().ok()
}

/// The pid that stands for this run: the command's when it started this engine, else this
/// process's own.
pub fn run_pid() -> u32 {
    front_pid().unwrap_or_else(std::process::id)
}

/// Whether a process of this host with this pid exists (a run that left a lock or a staging
/// folder, say).
pub fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Engine side: when started by the command, be killed with it. Returns `false` when the
/// command is already gone (the engine should stop at once).
pub fn follow_the_front() -> bool {
    let Some(front) = front_pid() else {
        return true;
    };
    // SIGKILL: the engine cannot outlive its command; results are written whole or not at all.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    // The command may have died before the request above: then the parent is another process.
    std::os::unix::process::parent_id() == front
}

/// Engine side: records that `path` is mapped into memory for the rest of the run.
pub fn record_mapped_file(path: &Path) {
    let Some(list) = std::env::var_os(MAPPED_FILES) else {
        return;
    };
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    if let Ok(mut file) = std::fs::OpenOptions::new().append(true).open(list) {
        let _ = writeln!(file, "{}", path.display());
    }
}

/// Engine side: when started by the command, records `code` as the run's outcome and ends this
/// process at once (SIGKILL: no destructor runs; the kernel closes the files and frees the
/// memory as for any exit). Returns when the engine runs on its own or the code cannot be
/// recorded: the caller then exits normally.
pub fn end_now(code: u8) {
    let (Some(_), Some(outcome)) = (front_pid(), std::env::var_os(OUTCOME)) else {
        return;
    };
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    if std::fs::write(outcome, code.to_string()).is_ok() {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}

/// Command side: the exit code the engine recorded before ending itself, if it did.
pub fn recorded_outcome(outcome: &Path) -> Option<u8> {
    std::fs::read_to_string(outcome).ok()?.trim().parse().ok()
}
