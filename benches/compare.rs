//! The source of BENCHMARKS.md: polyloop against tokio and smol, class against class,
//! with interleaved repetitions.
//!
//! ```text
//! cargo bench --bench compare                              # prints the tables
//! cargo bench --bench compare -- --write BENCHMARKS.md     # and puts them in the file
//! ```
//!
//! Options (after `--`): `--reps N` (default 9), `--scaling-reps N` (default 5),
//! `--no-scaling`, `--only SUBSTRING` (rows whose name contains it), `--write FILE`
//! (replaces the text between the `<!-- compare:begin -->` and `<!-- compare:end -->`
//! lines of FILE), `--help`. A bad option, a row or runtime that does not exist, or a
//! FILE without those lines is an error before anything runs.
//!
//! Classes:
//! - single thread: polyloop's default policy, tokio's `current_thread` runtime, smol's
//!   `LocalExecutor` on `async_io::block_on`;
//! - multi-thread, with as many threads running tasks as the machine has cores (N):
//!   polyloop's threadpool policy with its default worker count, tokio's `multi_thread`
//!   runtime with `worker_threads(N)`, smol's `Executor` run by N threads.
//!
//! In every runtime the measured work is a root future spawned as a task, which the
//! main thread awaits, as a program would. Each measurement runs in a fresh process
//! (this binary, re-run with `--one`), so that no runtime inherits another's threads,
//! caches or heap. The repetitions are interleaved: repetition `r` runs every row and
//! every runtime once, in an order rotated by `r`, before repetition `r + 1` starts, so
//! that a busy minute on the machine hits all runtimes alike. A row's figure is the
//! median of its repetitions, with their minimum and maximum.
//!
//! Floors: the single-thread ping-pong rows, the 1k-timer row and the children rows run
//! also with no async runtime at all (`floor` in `--one`), in the same rotation as the
//! runtimes: the same work, driven by hand on one thread (children: also on as many
//! threads as the multi-thread class has). Printed in a table of their own beside each
//! runtime's median, they show how much of a row is the runtime's own work.
//!
//! The scaling section runs the multi-thread rows with 1, 2, 4, 8 and 16 task threads
//! (more threads than cores, on a small machine: it is meant to be run as is on a big
//! one).

#[path = "common/deadlines.rs"]
mod deadlines;

use std::fmt::Write as _;

use polyloop_threadpool as _;
use std::future::{Future, ready};
use std::hint::black_box;
use std::pin::pin;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// Tasks per spawn+join measurement.
const SPAWN: u64 = 100_000;
/// Tasks, and yields per task, of the yield row.
const YIELD_TASKS: u64 = 4;
const YIELDS: u64 = 100_000;
/// Round trips per ping-pong measurement.
const PINGS: u64 = 50_000;
/// `block_on(ready)` calls per measurement.
const READY: u64 = 2_000_000;
/// Timer rows: deadlines spread over this long.
const SPREAD: Duration = Duration::from_millis(50);
/// Child rows: `/bin/true` runs, and at most this many alive at once.
const CHILDREN: usize = 1000;
const ALIVE: usize = 64;
/// Measurements per process: the first is a warm-up; the median of the rest counts.
const INNER: usize = 3;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rt {
    Polyloop,
    Tokio,
    Smol,
    /// No runtime: a row's floor (see [`floor`]), measured like a runtime of the row.
    Floor,
}

const RTS: [Rt; 3] = [Rt::Polyloop, Rt::Tokio, Rt::Smol];

impl Rt {
    fn name(self) -> &'static str {
        match self {
            Rt::Polyloop => "polyloop",
            Rt::Tokio => "tokio",
            Rt::Smol => "smol",
            Rt::Floor => "floor",
        }
    }

    fn parse(s: &str) -> Result<Rt, String> {
        match s {
            "polyloop" => Ok(Rt::Polyloop),
            "tokio" => Ok(Rt::Tokio),
            "smol" => Ok(Rt::Smol),
            "floor" => Ok(Rt::Floor),
            _ => Err(format!(
                "unknown runtime {s:?}: expected polyloop, tokio, smol or floor (no runtime)"
            )),
        }
    }

    /// What the runtime is in a class (0 threads = the single-thread class).
    fn setup(self, threads: usize) -> String {
        match (self, threads) {
            (Rt::Polyloop, 0) => "default policy".into(),
            (Rt::Tokio, 0) => "current_thread".into(),
            (Rt::Smol, 0) => "LocalExecutor".into(),
            (Rt::Polyloop, n) => format!("threadpool, {n} task threads"),
            (Rt::Tokio, n) => format!("multi_thread, {n} workers"),
            (Rt::Smol, n) => format!("Executor, {n} threads"),
            (Rt::Floor, 0) => "no runtime, one thread".into(),
            (Rt::Floor, n) => format!("no runtime, {n} threads"),
        }
    }
}

/// A row: what is measured, in which unit, and whether more is better.
#[derive(Clone, Copy)]
struct Row {
    id: &'static str,
    label: &'static str,
    unit: &'static str,
    higher_is_better: bool,
    /// Runtimes that have the row (the `block_on` variants are polyloop's ways in).
    rts: &'static [Rt],
    /// Measurements per runtime in each repetition: more than 1 for a row whose figure
    /// varies from process to process more than the runtimes differ.
    per_rep: usize,
}

/// The 1k-timer row's measurements per repetition: its figure is bimodal per process
/// (about 7 or about 10 µs on this project's machine, whichever the runtime), and a
/// process of it takes a third of a second.
const TIMER_SAMPLES: usize = 3;

const ALL: &[Rt] = &RTS;
const POLY: &[Rt] = &[Rt::Polyloop];
/// The runtimes and the row's floor. The floor takes its turn in each repetition's
/// rotation like a runtime, rather than in a loop of its own: a runtime's share is its
/// median minus the floor's, and a busy minute that hit only one of the two would
/// show in that difference.
const FLOORED: &[Rt] = &[Rt::Polyloop, Rt::Tokio, Rt::Smol, Rt::Floor];

const fn row(id: &'static str, label: &'static str, unit: &'static str) -> Row {
    Row { id, label, unit, higher_is_better: false, rts: ALL, per_rep: 1 }
}

const SINGLE_ROWS: &[Row] = &[
    row("spawn_join", "spawn+join, 100k tasks", "ns/task"),
    row("yield", "yield_now, 4 tasks × 100k", "ns/yield"),
    Row {
        rts: FLOORED,
        ..row("ping_pong", "ping-pong, 2 tasks, 50k round trips", "ns/round trip")
    },
    Row {
        rts: FLOORED,
        ..row(
            "ping_pong_slot",
            "ping-pong over a one-slot channel, 50k round trips",
            "ns/round trip",
        )
    },
    row("block_on_ready", "`block_on(ready)`", "ns"),
    Row { rts: POLY, ..row("block_on_ready_installed", "… after `install(\"default\")`", "ns") },
    Row { rts: POLY, ..row("block_on_ready_main", "… under `#[policy_main]`", "ns") },
    Row {
        rts: FLOORED,
        per_rep: TIMER_SAMPLES,
        ..row("timers_1k", "1k timers over 50 ms, overshoot p50", "µs")
    },
    row("timers_100k", "100k timers over 50 ms, overshoot p50 of those armed in time", "µs"),
    Row {
        rts: FLOORED,
        higher_is_better: true,
        ..row("children", "`/bin/true` × 1000, ≤ 64 alive", "children/s")
    },
];

const MULTI_ROWS: &[Row] = &[
    row("spawn_join", "spawn+join, 100k tasks", "ns/task"),
    row("yield", "yield_now, 4 tasks × 100k", "ns/yield"),
    row("ping_pong", "ping-pong, 2 tasks, 50k round trips", "ns/round trip"),
    row("ping_pong_slot", "ping-pong over a one-slot channel, 50k round trips", "ns/round trip"),
    row("block_on_ready", "`block_on(ready)`", "ns"),
    Row {
        rts: FLOORED,
        higher_is_better: true,
        ..row("children", "`/bin/true` × 1000, ≤ 64 alive", "children/s")
    },
];

const SCALING_ROWS: &[Row] = &[
    row("spawn_join", "spawn+join, 100k tasks", "ns/task"),
    row("yield_many", "yield_now, 64 tasks × 5k", "ns/yield"),
    row("ping_pong_many", "ping-pong, 16 pairs × 5k round trips", "ns/round trip"),
];

const SCALING_THREADS: [usize; 5] = [1, 2, 4, 8, 16];
/// Added to the thread count in the keys of the scaling runs, to keep them apart from
/// the classes' (see [`Key`]).
const SCALING: usize = 1 << 20;

/// How to call this bench (printed by `--help`, and with an error for a bad option).
const USAGE: &str = "\
usage: cargo bench --bench compare -- [OPTIONS]
  --reps N            repetitions of every row (default 9, at least 1)
  --scaling-reps N    repetitions of the scaling table (default 5, at least 1)
  --no-scaling        leave the scaling table out
  --only SUBSTRING    only the rows whose id contains SUBSTRING (with their floors)
  --write FILE        replace the text between FILE's compare markers with the tables
  --one ROW RUNTIME THREADS
                      one measurement in this process (RUNTIME: polyloop, tokio, smol,
                      or floor: the row's work with no runtime, for a row that has one
                      in the class; THREADS: 0 for the single-thread class)
  --help              this text";

/// The options of a run of the whole bench.
struct Options {
    reps: usize,
    scaling_reps: usize,
    scaling: bool,
    only: Option<String>,
    write: Option<String>,
}

/// What the command line asks for.
enum Invocation {
    /// One measurement, in this process.
    One { row: String, rt: Rt, threads: usize },
    /// Every row (or those of `--only`), each in fresh processes.
    All(Options),
    /// `--help`.
    Help,
}

/// Parses the options after `--` (`cargo bench` adds a `--bench` of its own). An
/// error says what was wrong.
fn parse_args(args: &[String]) -> Result<Invocation, String> {
    let mut opts = Options { reps: 9, scaling_reps: 5, scaling: true, only: None, write: None };
    let mut it = args.iter().map(String::as_str);
    let count = |flag: &str, v: Option<&str>| -> Result<usize, String> {
        let v = v.ok_or(format!("{flag} needs a number"))?;
        match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{flag} {v:?}: expected a whole number of at least 1")),
        }
    };
    while let Some(arg) = it.next() {
        match arg {
            "--bench" => {}
            "--help" | "-h" => return Ok(Invocation::Help),
            "--reps" => opts.reps = count(arg, it.next())?,
            "--scaling-reps" => opts.scaling_reps = count(arg, it.next())?,
            "--no-scaling" => opts.scaling = false,
            "--only" => opts.only = Some(it.next().ok_or("--only needs a substring")?.into()),
            "--write" => opts.write = Some(it.next().ok_or("--write needs a file")?.into()),
            "--one" => {
                let (Some(row), Some(rt), Some(threads)) = (it.next(), it.next(), it.next()) else {
                    return Err("--one needs ROW RUNTIME THREADS".into());
                };
                let rt = Rt::parse(rt)?;
                let threads = threads.parse().map_err(|_| {
                    format!("--one: thread count {threads:?}: expected a whole number")
                })?;
                if !SINGLE_ROWS.iter().chain(MULTI_ROWS).chain(SCALING_ROWS).any(|r| r.id == row) {
                    return Err(format!("--one: unknown row {row:?}; rows: {}", row_ids()));
                }
                let class = if threads == 0 { SINGLE_ROWS } else { MULTI_ROWS };
                if rt == Rt::Floor && !class.iter().any(|r| r.id == row && r.rts.contains(&rt)) {
                    return Err(format!(
                        "--one: row {row:?} has no floor with THREADS {threads}; rows with a \
                         floor: {} (THREADS 0), {} (THREADS 1 or more)",
                        floor_ids(SINGLE_ROWS),
                        floor_ids(MULTI_ROWS),
                    ));
                }
                return Ok(Invocation::One { row: row.into(), rt, threads });
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    if let Some(path) = &opts.write {
        markers(path)?;
    }
    if let Some(only) = &opts.only {
        if !SINGLE_ROWS
            .iter()
            .chain(MULTI_ROWS)
            .chain(SCALING_ROWS)
            .any(|r| r.id.contains(only.as_str()))
        {
            return Err(format!("--only {only:?} matches no row; rows: {}", row_ids()));
        }
    }
    Ok(Invocation::All(opts))
}

/// The ids of every row, for error messages.
fn row_ids() -> String {
    let mut ids: Vec<&str> =
        SINGLE_ROWS.iter().chain(MULTI_ROWS).chain(SCALING_ROWS).map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.join(", ")
}

/// The ids of the rows of `class` that have a floor, for error messages.
fn floor_ids(class: &[Row]) -> String {
    let ids: Vec<&str> =
        class.iter().filter(|r| r.rts.contains(&Rt::Floor)).map(|r| r.id).collect();
    ids.join(", ")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(Invocation::One { row, rt, threads }) => {
            println!("{}", measure(&row, rt, threads));
            return;
        }
        Ok(Invocation::All(opts)) => opts,
        Ok(Invocation::Help) => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("compare: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let Options { reps, scaling_reps, scaling, only, write } = opts;
    let cores = thread::available_parallelism().map_or(1, |n| n.get());

    let started = Instant::now();
    let load_before = loadavg();
    let keep = |r: &Row| only.as_ref().is_none_or(|o| r.id.contains(o.as_str()));
    let single: Vec<Row> = SINGLE_ROWS.iter().copied().filter(keep).collect();
    let multi: Vec<Row> = MULTI_ROWS.iter().copied().filter(keep).collect();
    let mut results = Results::default();
    for rep in 0..reps {
        eprintln!("repetition {} of {reps} ({:.0?} so far)", rep + 1, started.elapsed());
        run_rep(&single, 0, rep, &mut results);
        run_rep(&multi, cores, rep, &mut results);
    }
    let scaling_rows: Vec<Row> = SCALING_ROWS.iter().copied().filter(keep).collect();
    if scaling {
        for rep in 0..scaling_reps {
            eprintln!("scaling, repetition {} of {scaling_reps}", rep + 1);
            for (i, &n) in SCALING_THREADS.iter().enumerate() {
                run_rep(&scaling_rows, SCALING + n, rep + i, &mut results);
            }
        }
    }
    let load_after = loadavg();

    let mut out = String::new();
    // `cargo bench` adds a `--bench` of its own.
    let given: Vec<&str> = args.iter().map(String::as_str).filter(|a| *a != "--bench").collect();
    let command = format!("cargo bench --bench compare -- {}", given.join(" "));
    let _ = writeln!(out, "Produced by `{}` in {:.0?}.", command.trim_end(), started.elapsed());
    let _ = writeln!(
        out,
        "Commit {}, {}; {cores} cores; load average (1, 5, 15 min) {load_before} before, \
         {load_after} after. {reps} interleaved repetitions per row (each in a fresh \
         process; the 1k-timer row {TIMER_SAMPLES} processes per runtime and floor in \
         each): median, \
         and min–max in brackets.",
        commit(),
        utc_now(),
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "### Single thread\n");
    table(&mut out, &single, 0, &results);
    let _ = writeln!(out, "\n### Multi-thread, {cores} task threads\n");
    table(&mut out, &multi, cores, &results);
    if single.iter().chain(&multi).any(|r| r.rts.contains(&Rt::Floor)) {
        let multi_floor = if multi.iter().any(|r| r.rts.contains(&Rt::Floor)) {
            format!(" (the multi-thread class's: on {cores} threads, each with its share)")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "\n### Floors: the same work with no runtime\n\n\
             Each floor does its row's work with no async runtime, on one \
             thread{multi_floor}, measured like a runtime of the row. After each \
             runtime's median, in brackets: its own share, its median minus the floor's \
             (for children per second: in µs per child, 10⁶ / rate − 10⁶ / the floor's \
             rate).\n"
        );
        floors_table(&mut out, &[(&single, 0), (&multi, cores)], &results);
    }
    if scaling && !scaling_rows.is_empty() {
        let _ = writeln!(
            out,
            "\n### By task threads ({scaling_reps} interleaved repetitions: median, and \
             min–max in brackets; {cores} cores: above {cores} threads the machine is \
             oversubscribed)\n"
        );
        scaling_table(&mut out, &scaling_rows, &results);
    }
    print!("{out}");
    if let Some(path) = write {
        // Checked before the run too; read again, in case it changed meanwhile.
        match markers(&path) {
            Ok((text, b, e)) => {
                let new = format!("{}{BEGIN}{out}{}", &text[..b], &text[e..]);
                match std::fs::write(&path, new) {
                    Ok(()) => eprintln!("wrote {path}"),
                    Err(err) => eprintln!("compare: cannot write {path}: {err}"),
                }
            }
            Err(err) => eprintln!("compare: {err}"),
        }
    }
}

/// The line after which `--write` puts the tables.
const BEGIN: &str = "<!-- compare:begin -->\n";
/// The line before which the tables end.
const END: &str = "<!-- compare:end -->";

/// The text of `path`, and where the tables go in it (between [`BEGIN`] and [`END`]).
fn markers(path: &str) -> Result<(String, usize, usize), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| format!("--write {path}: cannot read it ({err})"))?;
    let b = text.find(BEGIN);
    let e = text.find(END);
    match (b, e) {
        (Some(b), Some(e)) if b < e => Ok((text, b, e)),
        _ => Err(format!(
            "--write {path}: expected a line {:?} and, after it, a line {END:?}",
            BEGIN.trim_end()
        )),
    }
}

/// A row id, a runtime and a class: a thread count (0: the single-thread class), plus
/// `SCALING` for the scaling runs.
type Key = (&'static str, Rt, usize);

/// Measurements by key.
#[derive(Default)]
struct Results(Vec<(Key, Vec<f64>)>);

impl Results {
    fn push(&mut self, key: Key, v: f64) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, vs)) => vs.push(v),
            None => self.0.push((key, vec![v])),
        }
    }

    /// Median, min, max.
    fn get(&self, key: Key) -> Option<(f64, f64, f64)> {
        let (_, vs) = self.0.iter().find(|(k, _)| *k == key)?;
        let mut vs = vs.clone();
        vs.sort_by(f64::total_cmp);
        let n = vs.len();
        let median = if n % 2 == 1 { vs[n / 2] } else { (vs[n / 2 - 1] + vs[n / 2]) / 2.0 };
        Some((median, vs[0], vs[n - 1]))
    }
}

/// One repetition of `rows` in the class of `class` (a thread count, plus `SCALING`
/// for the scaling runs): every (row, runtime) once, the runtimes' order rotated by
/// `rep`.
fn run_rep(rows: &[Row], class: usize, rep: usize, results: &mut Results) {
    for row in rows {
        let n = row.rts.len();
        for k in 0..row.per_rep {
            for i in 0..n {
                let rt = row.rts[(i + rep + k) % n];
                let v = run_one(row.id, rt, class % SCALING);
                results.push((row.id, rt, class), v);
            }
        }
    }
}

fn run_one(id: &str, rt: Rt, threads: usize) -> f64 {
    let out = Command::new(std::env::current_exe().expect("this binary"))
        .args(["--one", id, rt.name(), &threads.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .expect("runs a copy of this binary");
    assert!(out.status.success(), "{id} on {} failed: {:?}", rt.name(), out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().unwrap_or_else(|_| panic!("{id} on {}: not a number: {text:?}", rt.name()))
}

fn fmt_num(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn table(out: &mut String, rows: &[Row], threads: usize, results: &Results) {
    let _ = writeln!(
        out,
        "| row | unit | polyloop ({}) | tokio ({}) | smol ({}) | polyloop / best peer |",
        Rt::Polyloop.setup(threads),
        Rt::Tokio.setup(threads),
        Rt::Smol.setup(threads),
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
    for row in rows {
        let cell = |rt: Rt| fmt_cell(results.get((row.id, rt, threads)));
        let ours = results.get((row.id, Rt::Polyloop, threads)).map(|r| r.0);
        let peers: Vec<f64> = [Rt::Tokio, Rt::Smol]
            .iter()
            .filter_map(|&rt| results.get((row.id, rt, threads)).map(|r| r.0))
            .collect();
        let best = if row.higher_is_better {
            peers.iter().copied().reduce(f64::max)
        } else {
            peers.iter().copied().reduce(f64::min)
        };
        let ratio = match (ours, best) {
            (Some(o), Some(b)) if row.higher_is_better => format!("{:.2} (rate)", o / b),
            (Some(o), Some(b)) => format!("{:.2}", o / b),
            // A polyloop-only row: against the row the peers have.
            (Some(o), None) => match SINGLE_ROWS.iter().find(|r| r.id == "block_on_ready") {
                Some(base) => {
                    let peers: Vec<f64> = [Rt::Tokio, Rt::Smol]
                        .iter()
                        .filter_map(|&rt| results.get((base.id, rt, threads)).map(|r| r.0))
                        .collect();
                    match peers.iter().copied().reduce(f64::min) {
                        Some(b) => format!("{:.2}", o / b),
                        None => "—".into(),
                    }
                }
                None => "—".into(),
            },
            _ => "—".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            row.label,
            row.unit,
            cell(Rt::Polyloop),
            cell(Rt::Tokio),
            cell(Rt::Smol),
            ratio
        );
    }
}

/// The floors of the rows of each (rows, class) that have one, each beside every
/// runtime's median of the row and that runtime's own share.
fn floors_table(out: &mut String, classes: &[(&[Row], usize)], results: &Results) {
    let _ = writeln!(out, "| row | class | unit | no runtime | polyloop | tokio | smol |");
    let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|");
    for &(rows, threads) in classes {
        let class =
            if threads == 0 { "single thread".into() } else { format!("{threads} threads") };
        for row in rows.iter().filter(|r| r.rts.contains(&Rt::Floor)) {
            let floor = results.get((row.id, Rt::Floor, threads)).map(|r| r.0);
            let cell = |rt: Rt| match (results.get((row.id, rt, threads)), floor) {
                (Some((m, ..)), Some(f)) => {
                    // Times add up and rates do not: a rate's share is in µs per item.
                    let (share, unit) = if row.higher_is_better {
                        (1e6 / m - 1e6 / f, " µs")
                    } else {
                        (m - f, "")
                    };
                    let sign = if share < 0.0 { "−" } else { "+" };
                    format!("{} ({sign}{}{unit})", fmt_num(m), fmt_num(share.abs()))
                }
                (Some((m, ..)), None) => fmt_num(m),
                (None, _) => "—".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {class} | {} | {} | {} | {} | {} |",
                row.label,
                row.unit,
                fmt_cell(results.get((row.id, Rt::Floor, threads))),
                cell(Rt::Polyloop),
                cell(Rt::Tokio),
                cell(Rt::Smol),
            );
        }
    }
}

fn scaling_table(out: &mut String, rows: &[Row], results: &Results) {
    let _ = write!(out, "| row | runtime |");
    for n in SCALING_THREADS {
        let _ = write!(out, " {n} |");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "|---|---|{}", "---:|".repeat(SCALING_THREADS.len()));
    for row in rows {
        for rt in RTS {
            let _ = write!(out, "| {} ({}) | {} |", row.label, row.unit, rt.name());
            for n in SCALING_THREADS {
                let _ = write!(out, " {} |", fmt_cell(results.get((row.id, rt, SCALING + n))));
            }
            let _ = writeln!(out);
        }
    }
}

/// A table cell: the median, and min–max in brackets.
fn fmt_cell(result: Option<(f64, f64, f64)>) -> String {
    match result {
        Some((m, lo, hi)) => format!("{} [{}–{}]", fmt_num(m), fmt_num(lo), fmt_num(hi)),
        None => "—".into(),
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{head} (with uncommitted changes)") } else { head }
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------
// One measurement, in its own process.

/// The figure of one (row, runtime, class), in the row's unit.
fn measure(id: &str, rt: Rt, threads: usize) -> f64 {
    if rt == Rt::Floor {
        return floor(id, threads);
    }
    match id {
        "block_on_ready" => return block_on_ready(rt, threads, Way::Plain),
        "block_on_ready_installed" => return block_on_ready(rt, threads, Way::Installed),
        "block_on_ready_main" => return block_on_ready(rt, threads, Way::PolicyMain),
        _ => {}
    }
    let runtime = Runtime::new(rt, threads);
    let mut vs: Vec<f64> = (0..INNER)
        .map(|_| match id {
            "spawn_join" => runtime.run(spawn_join),
            "yield" => runtime.run(|s| yield_storm(s, YIELD_TASKS, YIELDS)),
            "yield_many" => runtime.run(|s| yield_storm(s, 64, 5_000)),
            "ping_pong" => runtime.run(|s| ping_pong(s, 1, PINGS)),
            "ping_pong_slot" => runtime.run(|s| ping_pong_slot(s, PINGS)),
            "ping_pong_many" => runtime.run(|s| ping_pong(s, 16, 5_000)),
            "timers_1k" => runtime.run(|s| timers(s, 1_000, false)),
            "timers_100k" => runtime.run(|s| timers(s, 100_000, true)),
            "children" => runtime.run(children),
            _ => panic!("unknown row {id:?}"),
        })
        .skip(1)
        .collect();
    drop(runtime);
    vs.sort_by(f64::total_cmp);
    vs[vs.len() / 2]
}

/// A boxed future.
type Fut<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// How a workload spawns tasks, whichever runtime it runs on.
#[derive(Clone)]
enum Spawner {
    Polyloop,
    Tokio,
    Smol(Arc<async_executor::Executor<'static>>),
    /// This thread's `LocalExecutor` (see [`LOCAL`]).
    SmolLocal,
}

thread_local! {
    /// The single-thread class's smol executor: leaked, so that tasks can reach it.
    static LOCAL: &'static async_executor::LocalExecutor<'static> =
        Box::leak(Box::new(async_executor::LocalExecutor::new()));
}

/// A task handle of any of the runtimes.
enum Join<T> {
    Polyloop(polyloop::Task<T>),
    Tokio(tokio::task::JoinHandle<T>),
    Smol(async_executor::Task<T>),
}

impl<T> Join<T> {
    async fn join(self) -> T {
        match self {
            Join::Polyloop(t) => t.await,
            Join::Tokio(t) => t.await.expect("the task did not panic"),
            Join::Smol(t) => t.await,
        }
    }
}

impl Spawner {
    fn spawn<T: Send + 'static>(&self, f: impl Future<Output = T> + Send + 'static) -> Join<T> {
        match self {
            Spawner::Polyloop => Join::Polyloop(polyloop::spawn(f)),
            Spawner::Tokio => Join::Tokio(tokio::spawn(f)),
            Spawner::Smol(ex) => Join::Smol(ex.spawn(f)),
            Spawner::SmolLocal => Join::Smol(LOCAL.with(|ex| ex.spawn(f))),
        }
    }

    async fn yield_now(&self) {
        match self {
            Spawner::Polyloop => polyloop::yield_now().await,
            Spawner::Tokio => tokio::task::yield_now().await,
            Spawner::Smol(_) | Spawner::SmolLocal => futures_lite::future::yield_now().await,
        }
    }

    async fn sleep_until(&self, t: Instant) {
        match self {
            Spawner::Polyloop => polyloop::sleep_until(t).await,
            Spawner::Tokio => tokio::time::sleep_until(t.into()).await,
            Spawner::Smol(_) | Spawner::SmolLocal => {
                async_io::Timer::at(t).await;
            }
        }
    }

    async fn true_status(&self) -> bool {
        match self {
            Spawner::Polyloop => {
                polyloop::process::Command::new("/bin/true").status().await.unwrap().success()
            }
            Spawner::Tokio => {
                tokio::process::Command::new("/bin/true").status().await.unwrap().success()
            }
            Spawner::Smol(_) | Spawner::SmolLocal => {
                async_process::Command::new("/bin/true").status().await.unwrap().success()
            }
        }
    }
}

/// A runtime of a class, set up once per process; `run` spawns the root future as a
/// task and waits for it on the main thread.
enum Runtime {
    Polyloop,
    Tokio(tokio::runtime::Runtime),
    SmolLocal,
    SmolPool {
        ex: Arc<async_executor::Executor<'static>>,
        stop: async_channel::Sender<()>,
        threads: Vec<thread::JoinHandle<()>>,
    },
}

impl Runtime {
    fn new(rt: Rt, threads: usize) -> Runtime {
        match (rt, threads) {
            (Rt::Polyloop, 0) => Runtime::Polyloop,
            // One task thread: the default policy's loop is that.
            (Rt::Polyloop, 1) => Runtime::Polyloop,
            (Rt::Polyloop, n) => {
                // The policy's own default for as many task threads as cores (a
                // `POLYLOOP_WORKERS` in the environment overrides it, for trials).
                let cores = thread::available_parallelism().map_or(1, |c| c.get());
                let workers = (n != cores).then(|| pool_workers(n));
                polyloop::plugin::set_options(polyloop::plugin::PolicyOptions {
                    workers,
                    debug: None,
                });
                polyloop::plugin::install("threadpool").expect("the threadpool plug-in is linked");
                Runtime::Polyloop
            }
            (Rt::Tokio, 0) => Runtime::Tokio(
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
            ),
            (Rt::Tokio, n) => Runtime::Tokio(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(n)
                    .enable_all()
                    .build()
                    .unwrap(),
            ),
            (Rt::Floor, _) => unreachable!("a floor runs without a runtime"),
            (Rt::Smol, 0) => Runtime::SmolLocal,
            (Rt::Smol, n) => {
                let ex = Arc::new(async_executor::Executor::new());
                let (stop, stopped) = async_channel::bounded::<()>(1);
                let threads = (0..n)
                    .map(|_| {
                        let (ex, stopped) = (ex.clone(), stopped.clone());
                        thread::spawn(move || {
                            async_io::block_on(ex.run(async move { stopped.recv().await.ok() }));
                        })
                    })
                    .collect();
                Runtime::SmolPool { ex, stop, threads }
            }
        }
    }

    /// Spawns `root(spawner)` as a task, waits for it, and gives its figure.
    fn run(&self, root: impl FnOnce(Spawner) -> Fut<f64> + Send + 'static) -> f64 {
        match self {
            Runtime::Polyloop => {
                polyloop::block_on(async { polyloop::spawn(root(Spawner::Polyloop)).await })
            }
            Runtime::Tokio(rt) => {
                rt.block_on(async { tokio::spawn(root(Spawner::Tokio)).await.unwrap() })
            }
            Runtime::SmolLocal => {
                let ex = LOCAL.with(|ex| *ex);
                async_io::block_on(ex.run(ex.spawn(root(Spawner::SmolLocal))))
            }
            Runtime::SmolPool { ex, .. } => {
                async_io::block_on(ex.spawn(root(Spawner::Smol(ex.clone()))))
            }
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Runtime::SmolPool { stop, threads, .. } = self {
            stop.close();
            for t in threads.drain(..) {
                t.join().unwrap();
            }
        }
    }
}

/// The threadpool's worker count that makes `n` threads run tasks in all: its workers
/// and the thread that runs the loop (see the threadpool policy's docs).
fn pool_workers(n: usize) -> usize {
    n.saturating_sub(1).max(1)
}

fn spawn_join(s: Spawner) -> Fut<f64> {
    Box::pin(async move {
        let start = Instant::now();
        let tasks: Vec<_> = (0..SPAWN).map(|_| s.spawn(async {})).collect();
        for t in tasks {
            t.join().await;
        }
        start.elapsed().as_nanos() as f64 / SPAWN as f64
    })
}

fn yield_storm(s: Spawner, tasks: u64, yields: u64) -> Fut<f64> {
    Box::pin(async move {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let s2 = s.clone();
                s.spawn(async move {
                    for _ in 0..yields {
                        s2.yield_now().await;
                    }
                })
            })
            .collect();
        for t in handles {
            t.join().await;
        }
        start.elapsed().as_nanos() as f64 / (tasks * yields) as f64
    })
}

fn ping_pong(s: Spawner, pairs: u64, rounds: u64) -> Fut<f64> {
    Box::pin(async move {
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..pairs {
            let (pong, ping) = channel_pair(rounds);
            handles.push(s.spawn(pong));
            handles.push(s.spawn(ping));
        }
        for t in handles {
            t.join().await;
        }
        start.elapsed().as_nanos() as f64 / (pairs * rounds) as f64
    })
}

/// The two futures of a ping-pong pair over `async_channel`s of capacity 1: one
/// answers each number it gets, the other sends `rounds` numbers and awaits each answer.
fn channel_pair(rounds: u64) -> (impl Future<Output = ()> + Send, impl Future<Output = ()> + Send) {
    let (a_tx, a_rx) = async_channel::bounded::<u64>(1);
    let (b_tx, b_rx) = async_channel::bounded::<u64>(1);
    let pong = async move {
        while let Ok(i) = a_rx.recv().await {
            b_tx.send(i).await.unwrap();
        }
    };
    let ping = async move {
        for i in 0..rounds {
            a_tx.send(i).await.unwrap();
            b_rx.recv().await.unwrap();
        }
    };
    (pong, ping)
}

/// A channel of one value: a mutex and the receiver's waker, about the least a
/// hand-written channel does. Over it, a ping-pong is mostly the runtime's wake-up and
/// task switch, where over `async_channel` those are about a third of the work.
#[derive(Clone, Default)]
struct OneSlot(Arc<std::sync::Mutex<(Option<u64>, Option<std::task::Waker>)>>);

impl OneSlot {
    fn send(&self, v: u64) {
        let waker = {
            let mut slot = self.0.lock().unwrap();
            slot.0 = Some(v);
            slot.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    async fn recv(&self) -> u64 {
        std::future::poll_fn(|cx| {
            let mut slot = self.0.lock().unwrap();
            match slot.0.take() {
                Some(v) => std::task::Poll::Ready(v),
                None => {
                    if !slot.1.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        slot.1 = Some(cx.waker().clone());
                    }
                    std::task::Poll::Pending
                }
            }
        })
        .await
    }
}

/// Two tasks pass a number back and forth over two [`OneSlot`]s.
fn ping_pong_slot(s: Spawner, rounds: u64) -> Fut<f64> {
    Box::pin(async move {
        let start = Instant::now();
        let (pong, ping) = slot_pair(rounds);
        let pong = s.spawn(pong);
        let ping = s.spawn(ping);
        pong.join().await;
        ping.join().await;
        start.elapsed().as_nanos() as f64 / rounds as f64
    })
}

/// The two futures of a ping-pong pair over [`OneSlot`]s, as [`channel_pair`]'s.
fn slot_pair(rounds: u64) -> (impl Future<Output = ()> + Send, impl Future<Output = ()> + Send) {
    let (a, b) = (OneSlot::default(), OneSlot::default());
    let (a2, b2) = (a.clone(), b.clone());
    let pong = async move {
        for _ in 0..rounds {
            let i = a2.recv().await;
            b2.send(i);
        }
    };
    let ping = async move {
        for i in 0..rounds {
            a.send(i);
            b.recv().await;
        }
    };
    (pong, ping)
}

/// `n` timers with deadlines spread over `SPREAD`, each in its own task: the median of
/// how late they fired (µs); with `armed_only`, of those whose task was first polled
/// before its deadline.
fn timers(s: Spawner, n: usize, armed_only: bool) -> Fut<f64> {
    Box::pin(async move {
        let offsets = timer_offsets(n);
        // Deadlines count from after every task is spawned, before any is polled.
        let base: Arc<OnceLock<Instant>> = Arc::default();
        let tasks: Vec<_> = offsets
            .into_iter()
            .map(|off| {
                let (base, s2) = (base.clone(), s.clone());
                s.spawn(async move {
                    let d = *base.get().expect("set before tasks run") + off;
                    let late = Instant::now() >= d;
                    s2.sleep_until(d).await;
                    (Instant::now() - d, late)
                })
            })
            .collect();
        base.set(Instant::now()).unwrap();
        let mut all = Vec::with_capacity(n);
        for t in tasks {
            let (over, late) = t.join().await;
            if !(armed_only && late) {
                all.push(over);
            }
        }
        all.sort();
        all.get(all.len() / 2).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
    })
}

/// The timer rows' `n` deadlines, as offsets from a base (see `deadlines::offsets`).
fn timer_offsets(n: usize) -> Vec<Duration> {
    deadlines::offsets(n, SPREAD)
}

/// `CHILDREN` runs of `/bin/true`, at most `ALIVE` at once, each awaited by a task of
/// its own: children per second.
fn children(s: Spawner) -> Fut<f64> {
    Box::pin(async move {
        let start = Instant::now();
        let (tx, rx) = async_channel::bounded::<()>(ALIVE);
        for _ in 0..ALIVE {
            tx.send(()).await.unwrap();
        }
        let mut handles = std::collections::VecDeque::new();
        for _ in 0..CHILDREN {
            rx.recv().await.unwrap();
            let (s2, tx) = (s.clone(), tx.clone());
            handles.push_back(s.spawn(async move {
                assert!(s2.true_status().await);
                let _ = tx.send(()).await;
            }));
            // Join the finished ones as we go, so handles do not pile up.
            while handles.len() > ALIVE {
                handles.pop_front().unwrap().join().await;
            }
        }
        for t in handles {
            t.join().await;
        }
        CHILDREN as f64 / start.elapsed().as_secs_f64()
    })
}

#[derive(Clone, Copy)]
enum Way {
    Plain,
    Installed,
    PolicyMain,
}

/// `block_on(ready)`: ns per call, on the main thread (or a thread of a
/// `#[policy_main]` program: its main thread runs the loop).
fn block_on_ready(rt: Rt, threads: usize, way: Way) -> f64 {
    fn time(f: impl Fn() -> u32) -> f64 {
        let mut best = f64::MAX;
        for _ in 0..INNER {
            let start = Instant::now();
            for _ in 0..READY {
                black_box(f());
            }
            best = best.min(start.elapsed().as_nanos() as f64 / READY as f64);
        }
        best
    }
    match (rt, threads) {
        (Rt::Polyloop, 0) => match way {
            Way::Plain => time(|| polyloop::block_on(ready(1u32))),
            Way::Installed => {
                polyloop::plugin::install("default").unwrap();
                time(|| polyloop::block_on(ready(1u32)))
            }
            Way::PolicyMain => polyloop::__private::policy_main(
                polyloop::__private::MainConfig::default(),
                async {
                    thread::spawn(|| time(|| polyloop::block_on(ready(1u32)))).join().unwrap()
                },
            ),
        },
        (Rt::Polyloop, n) => {
            let _runtime = Runtime::new(Rt::Polyloop, n);
            time(|| polyloop::block_on(ready(1u32)))
        }
        (Rt::Tokio, 0) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            time(|| rt.block_on(ready(1u32)))
        }
        (Rt::Tokio, n) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .enable_all()
                .build()
                .unwrap();
            time(|| rt.block_on(ready(1u32)))
        }
        // smol's `block_on` is async-io's, whatever the executor.
        (Rt::Smol, _) => time(|| async_io::block_on(ready(1u32))),
        (Rt::Floor, _) => unreachable!("`block_on(ready)` has no floor"),
    }
}

// ---------------------------------------------------------------------------------
// Floors: a row's work with no async runtime, to show each runtime's own share.

/// The floor of row `id` in the class of `threads`, in the row's unit: like a
/// runtime's figure, the median of `INNER` runs in this process after the first.
fn floor(id: &str, threads: usize) -> f64 {
    let mut vs: Vec<f64> = (0..INNER)
        .map(|_| match id {
            "ping_pong" => ping_pong_floor(channel_pair),
            "ping_pong_slot" => ping_pong_floor(slot_pair),
            "timers_1k" => timers_floor(1_000),
            "children" => children_floor(threads),
            _ => panic!("row {id:?} has no floor"),
        })
        .skip(1)
        .collect();
    vs.sort_by(f64::total_cmp);
    vs[vs.len() / 2]
}

/// The two futures of a ping-pong row, polled in turn on this thread until both are
/// done, with a waker that does nothing: no executor, no queue, and wakes and waker
/// clones that cost nothing, so what is left is the channel's own work. Each poll lets
/// the other future's next poll progress, so the loop never spins idle. ns per round
/// trip.
fn ping_pong_floor<A, B>(pair: impl FnOnce(u64) -> (A, B)) -> f64
where
    A: Future<Output = ()>,
    B: Future<Output = ()>,
{
    let start = Instant::now();
    let (pong, ping) = pair(PINGS);
    let (mut pong, mut ping) = (pin!(pong), pin!(ping));
    let mut cx = Context::from_waker(Waker::noop());
    let (mut pong_done, mut ping_done) = (false, false);
    while !(pong_done && ping_done) {
        pong_done = pong_done || pong.as_mut().poll(&mut cx).is_ready();
        ping_done = ping_done || ping.as_mut().poll(&mut cx).is_ready();
    }
    start.elapsed().as_nanos() as f64 / PINGS as f64
}

/// The 1k-timer row's deadlines slept to on this thread with no runtime: sorted, each
/// wait on a timerfd armed for the next deadline, then `now - deadline` for every
/// deadline passed. p50 overshoot in µs.
///
/// Every wait makes the system calls of async-io's reactor (the `polling` crate's epoll
/// backend, `Poller::wait_deadline`), which polyloop's and smol's timers sleep in:
/// `timerfd_settime` with the time left (relative; zero, which disarms it, when the
/// deadline has passed), `epoll_ctl(EPOLL_CTL_MOD)` to re-arm the timerfd's
/// `EPOLLONESHOT` registration, `epoll_wait` (no timeout, or 0 when the time left is
/// zero), then a `read` of its notification eventfd (non-blocking: it finds nothing)
/// and an `EPOLL_CTL_MOD` that re-arms the eventfd's one-shot registration. The timerfd
/// is never read: `timerfd_settime` clears its expirations.
fn timers_floor(n: usize) -> f64 {
    use rustix::buffer::spare_capacity;
    use rustix::event::epoll::EventFlags as F;
    use rustix::event::{EventfdFlags, Timespec, epoll, eventfd};
    use rustix::time::{
        Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, timerfd_create,
        timerfd_settime,
    };

    let mut offsets = timer_offsets(n);
    offsets.sort();
    let epoll_fd = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll_create1");
    let timer =
        timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK)
            .expect("timerfd_create");
    let notify = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).expect("eventfd");
    // As `polling`: the timerfd is added with no interest, the eventfd readable.
    let readable = F::ONESHOT | F::IN | F::HUP | F::ERR | F::PRI;
    let key = epoll::EventData::new_u64(u64::MAX);
    epoll::add(&epoll_fd, &timer, key, F::ONESHOT).expect("epoll_ctl(ADD)");
    epoll::add(&epoll_fd, &notify, key, readable).expect("epoll_ctl(ADD)");
    let mut events = Vec::with_capacity(1024);
    let mut over = Vec::with_capacity(n);

    let base = Instant::now();
    let deadlines: Vec<Instant> = offsets.iter().map(|&off| base + off).collect();
    let mut next = 0;
    while next < n {
        let left = deadlines[next].saturating_duration_since(Instant::now());
        let it_value = Timespec::try_from(left).expect("under 50 ms");
        let spec = Itimerspec { it_interval: Timespec::default(), it_value };
        timerfd_settime(&timer, TimerfdTimerFlags::empty(), &spec).expect("timerfd_settime");
        epoll::modify(&epoll_fd, &timer, key, readable).expect("epoll_ctl(MOD)");
        let zero = Timespec::default();
        events.clear();
        epoll::wait(&epoll_fd, spare_capacity(&mut events), left.is_zero().then_some(&zero))
            .expect("epoll_wait");
        let _ = rustix::io::read(&notify, &mut [0u8; 8]);
        epoll::modify(&epoll_fd, &notify, key, readable).expect("epoll_ctl(MOD)");
        let now = Instant::now();
        while next < n && deadlines[next] <= now {
            over.push(now - deadlines[next]);
            next += 1;
        }
    }
    over.sort();
    over[n / 2].as_secs_f64() * 1e6
}

/// `CHILDREN` runs of `/bin/true` with no runtime: `std`'s `spawn` and `wait`, on this
/// thread (class 0), or on `threads` threads that each run their share of the children
/// with their share of `ALIVE`, so that at most `ALIVE` are alive in all. Children per
/// second.
fn children_floor(threads: usize) -> f64 {
    let start = Instant::now();
    if threads == 0 {
        run_children(CHILDREN, ALIVE);
    } else {
        thread::scope(|s| {
            for t in 0..threads {
                let count = CHILDREN / threads + usize::from(t < CHILDREN % threads);
                s.spawn(move || run_children(count, (ALIVE / threads).max(1)));
            }
        });
    }
    CHILDREN as f64 / start.elapsed().as_secs_f64()
}

/// Runs `/bin/true` `count` times, waiting for the oldest child whenever `alive` are
/// alive, then for the rest.
fn run_children(count: usize, alive: usize) {
    let mut children = std::collections::VecDeque::with_capacity(alive);
    for _ in 0..count {
        if children.len() == alive {
            let mut oldest: std::process::Child = children.pop_front().unwrap();
            assert!(oldest.wait().unwrap().success());
        }
        children.push_back(Command::new("/bin/true").spawn().expect("spawns /bin/true"));
    }
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
}
