//! Instructions per call, counted by callgrind: a bench binary runs itself under valgrind, once
//! per row and call count, and takes the difference.
//!
//! The parent (a bench run with `--instructions`) starts the same executable under
//! `valgrind --tool=callgrind`, with [`ENV`] naming one row and a number of calls. The child
//! builds its services as the timed run does, drives that row's service the given number of
//! times inside the function named by the bench's toggle (`<bench>::counted`, the only code
//! callgrind counts), and exits. Each row runs twice, with [`CALLS`] and twice as many calls:
//! the difference over [`CALLS`] is the cost of one call, with setup, warm-up and the runtime's
//! start cancelled out. Instruction counts do not move from run to run the way wall time does
//! on a shared machine.

use std::path::PathBuf;
use std::process::Command;

/// Set in the child: `<row>=<calls>`.
pub(crate) const ENV: &str = "BATTLEMENT_CALLGRIND_ROW";

/// The calls of the shorter run; the longer one makes twice as many.
pub(crate) const CALLS: u64 = 10_000;

/// The child's exit code for a row the binary does not have.
pub(crate) const NO_SUCH_ROW: u8 = 3;

/// In a child: the row to drive and how many calls to make.
pub(crate) fn child() -> Option<(String, u64)> {
    let spec = std::env::var(ENV).ok()?;
    let (row, calls) = spec.rsplit_once('=')?;
    Some((row.to_owned(), calls.parse().ok()?))
}

/// Whether this run asks for instruction counts (`-- --instructions`).
pub(crate) fn asked() -> bool {
    std::env::args().any(|a| a == "--instructions")
}

/// Checks that valgrind can run, with a message saying how to get it if not.
pub(crate) fn check() -> Result<(), String> {
    match Command::new("valgrind").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => Err(
            "instruction counts need valgrind (Debian: `apt-get install -y valgrind`; \
                  benches/report.sh installs it)"
                .to_owned(),
        ),
    }
}

/// Instructions per call of each of `rows` (see [`per_call`]), in order, with progress on
/// standard error; a row the executable does not have is left out. Checks for valgrind first.
pub(crate) fn count_rows<'a>(
    rows: impl IntoIterator<Item = &'a str>,
    toggle: &str,
) -> Result<Vec<(&'a str, f64)>, String> {
    check()?;
    let mut counts = Vec::new();
    for row in rows {
        eprintln!("counting {row}...");
        match per_call(row, toggle)? {
            Some(n) => counts.push((row, n)),
            None => eprintln!("{row}: no such row"),
        }
    }
    Ok(counts)
}

/// Instructions one call of `row` costs in this executable, counted inside `toggle` (a function
/// name pattern, e.g. `overhead::counted*`); `None` when the executable has no such row.
pub(crate) fn per_call(row: &str, toggle: &str) -> Result<Option<f64>, String> {
    let Some(short) = total(row, toggle, CALLS)? else {
        return Ok(None);
    };
    let Some(long) = total(row, toggle, 2 * CALLS)? else {
        return Ok(None);
    };
    Ok(Some((long as f64 - short as f64) / CALLS as f64))
}

/// Instructions counted inside `toggle` in one run of `calls` calls of `row`.
fn total(row: &str, toggle: &str, calls: u64) -> Result<Option<u64>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out_file = out_path(row, calls);
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out_file.display()))
        .arg(format!("--toggle-collect={toggle}"))
        .arg(&exe)
        .env(ENV, format!("{row}={calls}"))
        .output()
        .map_err(|e| format!("valgrind: {e}"))?;
    if status.status.code() == Some(i32::from(NO_SUCH_ROW)) {
        return Ok(None);
    }
    if !status.status.success() {
        return Err(format!(
            "{row} under callgrind failed ({}):\n{}",
            status.status,
            String::from_utf8_lossy(&status.stderr)
        ));
    }
    let text =
        std::fs::read_to_string(&out_file).map_err(|e| format!("{}: {e}", out_file.display()))?;
    let _ = std::fs::remove_file(&out_file);
    let total = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|n| n.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no totals in {}", out_file.display()))?;
    Ok(Some(total))
}

fn out_path(row: &str, calls: u64) -> PathBuf {
    let name: String = row
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::env::temp_dir().join(format!(
        "battlement-callgrind-{}-{name}-{calls}.out",
        std::process::id()
    ))
}
