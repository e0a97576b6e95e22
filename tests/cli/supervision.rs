//! The command stays the engine's parent: a death by signal becomes a clear error (SIGBUS: the
//! checkpoint mapped by the run was truncated), signals reach the engine, and the engine does not
//! outlive its command.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Case, binary, repo, stderr, tree_digest};

/// The long case of the harness, one session per batch, with debug lines.
fn long_case(n: usize) -> (Case, Vec<String>) {
    crate::harness::long_case(n, &["--batch_size", "1", "-v"])
}

/// Starts the command; returns it once its stderr has shown a line containing `marker`, with
/// the rest of stderr read on a thread (joined into the returned handle).
fn start_until(
    args: &[String],
    cwd: &Path,
    marker: &str,
) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = Command::new(binary())
        .args(args)
        .current_dir(cwd)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(marker) {
            let rest = std::thread::spawn(move || {
                for line in lines {
                    seen.push_str(&line.unwrap_or_default());
                    seen.push('\n');
                }
                seen
            });
            return (child, rest);
        }
    }
    let _ = child.kill();
    let status = child.wait();
    panic!("the run ended ({status:?}) before `{marker}`:\n{seen}");
}

/// The engine: the only child of the command `front`.
fn engine_of(front: u32) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{front}/task/{front}/children")).unwrap();
    children.split_whitespace().next().unwrap().parse().unwrap()
}

fn gone_within(pid: u32, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its parent.
        if state.is_empty()
            || state
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A checkpoint truncated while a CPU run maps it: SIGBUS in the engine, a clear error naming
/// the checkpoint from the command, exit 1, and no results of that set.
#[test]
fn a_checkpoint_truncated_during_the_run_is_a_clear_error() {
    let (case, args) = long_case(3000);
    let checkpoint: PathBuf = case.maps().join("split-0/best-loss/model.pth.tar");
    let (mut child, rest) = start_until(&args, &case.dir, "DEBUG: model loaded");
    std::fs::File::options()
        .write(true)
        .open(&checkpoint)
        .unwrap()
        .set_len(0)
        .unwrap();
    let status = child.wait().unwrap();
    let err = rest.join().unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: the run stopped (SIGBUS): a file it reads through a memory map was truncated or rewritten while it ran: `")
            && err.contains("split-0/best-loss/model.pth.tar`")
            && err.contains("hint: a checkpoint must not change during a prediction"),
        "{err}"
    );
    assert!(
        !case.maps().join("split-0/best-loss/long").exists(),
        "no results"
    );
}

/// SIGTERM (a scheduler's time limit) sent to the command reaches the engine; the command says
/// so and exits 143 like a shell.
#[test]
fn a_signal_to_the_command_stops_the_engine() {
    let (case, args) = long_case(3000);
    let (child, rest) = start_until(&args, &case.dir, "DEBUG: model loaded");
    let engine = engine_of(child.id());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    let err = rest.join().unwrap();
    assert_eq!(output.status.code(), Some(143), "{err}");
    assert!(
        err.contains("error: the run was stopped by SIGTERM"),
        "{err}"
    );
    assert!(
        gone_within(engine, Duration::from_secs(5)),
        "the engine runs on"
    );
    assert!(
        !case.maps().join("split-0/best-loss/long").exists(),
        "no results"
    );
}

/// `kill -9` of the command takes the engine with it.
#[test]
fn the_engine_does_not_outlive_its_command() {
    let (case, args) = long_case(3000);
    let (mut child, rest) = start_until(&args, &case.dir, "DEBUG: model loaded");
    let engine = engine_of(child.id());
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = rest.join();
    assert!(
        gone_within(engine, Duration::from_secs(5)),
        "the engine runs on"
    );
    // A rerun takes over at once: the lock names the dead command.
    let out = Command::new(binary())
        .args(&args)
        .current_dir(&case.dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The command turns each death of its engine into the right message, whatever the engine
/// (here a stand-in script): SIGBUS names the files the engine listed.
#[test]
fn deaths_by_signal_are_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = crate::harness::stand_in_engine(
        tmp.path(),
        "echo /maps/split-0/best-loss/model.pth.tar >> \"$CLINICADL_RS_MAPPED_FILES\"\nkill -\"$SIGNAL\" $$\n",
    );
    let maps = repo().join("examples/image_classification/maps");
    let before = tree_digest(&maps);
    for (signal, code, needle) in [
        (
            "BUS",
            1,
            "error: the run stopped (SIGBUS): a file it reads through a memory map was truncated or rewritten while it ran: `/maps/split-0/best-loss/model.pth.tar`",
        ),
        (
            "KILL",
            137,
            "error: the run was killed (SIGKILL), most often by the out-of-memory killer",
        ),
        ("TERM", 143, "error: the run was stopped by SIGTERM"),
    ] {
        let out = Command::new(binary())
            .args(["predict", maps.to_str().unwrap(), "test", "--no-gpu"])
            .env("CLINICADL_RS_ENGINE", &engine)
            .env("SIGNAL", signal)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{}", stderr(&out));
    }
    assert!(tree_digest(&maps) == before);
}

/// An engine that records its exit code and then ends itself with SIGKILL (what the real one
/// does once its work is over, to skip libtorch's static destructors) gives that code, without
/// any message; the real engine's runs above and in every other test go that way.
#[test]
fn an_engine_ending_itself_after_recording_its_outcome_gives_that_code() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = crate::harness::stand_in_engine(
        tmp.path(),
        "printf %s \"$CODE\" > \"$CLINICADL_RS_OUTCOME\"\nkill -KILL $$\n",
    );
    let maps = repo().join("examples/image_classification/maps");
    for code in [0, 1, 2] {
        let out = Command::new(binary())
            .args(["predict", maps.to_str().unwrap(), "test", "--no-gpu"])
            .env("CLINICADL_RS_ENGINE", &engine)
            .env("CODE", code.to_string())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
        assert_eq!(stderr(&out), "");
    }
}
