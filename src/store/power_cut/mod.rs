//! Power cuts of the durable store, in process, fast and deterministic
//! once a run is recorded: the store runs its real write paths over a
//! [`Disk`](disk::Disk) that journals every write, size change and sync;
//! the test then rebuilds the disk as a power cut after any call would
//! have left it (synced bytes only, or with later writes written back in
//! order or by chance, the last one torn) and opens the store over each
//! image, checking it as [`check`] says.
//!
//! A `SIGKILL` (`tests/crash.rs`) cannot lose what sits in the operating
//! system's cache; this can, so a missing or misplaced sync fails here.
//! What the store syncs, and why that is enough, is in the durable store's
//! `data_dir` module.

mod check;
mod disk;
mod run;

use check::{Found, reopen};
use disk::{Cut, Replay, WrittenBack};
use run::{Run, Workload};

use crate::store::pod_log::line_cost;

/// Short enough to cut at every call.
const SHORT: Workload = Workload {
    sessions: 3,
    writes_per_session: 8,
    uploaders: 1,
    uploads_each: 3,
    chunks_per_upload: 3,
    lines_per_chunk: 6,
};

/// Long enough to trim the history and the logs many times over.
const LONG: Workload = Workload {
    sessions: 4,
    writes_per_session: 60,
    uploaders: 2,
    uploads_each: 8,
    chunks_per_upload: 4,
    lines_per_chunk: 10,
};

/// A torn write keeps whole sectors of what it wrote.
fn torn(coin: &mut fastrand::Rng) -> usize {
    512 * coin.usize(0..16)
}

/// The cuts made so far, and what they found.
#[derive(Default)]
struct Tally {
    cuts: usize,
    /// Acknowledgements checked, summed over the cuts.
    acknowledged: usize,
    failures: Vec<String>,
}

impl Tally {
    /// Reopens the store after `cut` of `run`, and counts it.
    async fn cut(&mut self, run: &Run, replay: &mut Replay<'_>, cut: Cut) -> Option<Found> {
        let image = replay.image(&cut);
        self.cuts += 1;
        match reopen(run, &cut, image).await {
            Ok(found) => {
                self.acknowledged += found.acknowledged;
                Some(found)
            }
            Err(failure) => {
                self.failures.push(format!("{cut:?}: {failure}"));
                None
            }
        }
    }

    fn assert_none_failed(&self) {
        let first: Vec<&str> = self.failures.iter().take(3).map(String::as_str).collect();
        assert!(
            self.failures.is_empty(),
            "{} of {} power cuts failed; the first:\n{}",
            self.failures.len(),
            self.cuts,
            first.join("\n")
        );
        eprintln!(
            "{} power cuts; {} acknowledgements checked after them; none lost",
            self.cuts, self.acknowledged
        );
    }
}

/// The run trimmed its history, and each log outgrew its limit `times`
/// over, so that cuts fall among trimmings too.
fn assert_trims(run: &Run, times: usize) {
    assert!(
        run.changes.len() > 2 * run::HISTORY,
        "the history was trimmed"
    );
    for lines in run.lines.values() {
        let bytes: usize = lines.iter().map(|line| line_cost(line)).sum();
        assert!(
            bytes > times * run::LOG_BYTES_PER_POD,
            "the log outgrew its limit"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cut_of_a_short_run() {
    let run = run::run(SHORT).await;
    assert_trims(&run, 1);
    let mut replay = Replay::new(&run.journal);
    let mut coin = fastrand::Rng::with_seed(27);
    let (mut tally, mut lost) = (Tally::default(), 0);
    for after in 0..=run.journal.len() {
        let cut = |written_back| Cut {
            after,
            written_back,
        };
        let synced = tally
            .cut(&run, &mut replay, cut(WrittenBack::Nothing))
            .await;
        let everything = WrittenBack::InOrder { torn: usize::MAX };
        let everything = tally.cut(&run, &mut replay, cut(everything)).await;
        // The cut cost what was not synced: the test would prove nothing
        // if unsynced data survived it.
        lost += usize::from(synced.is_some() && synced < everything);
        let torn_write = WrittenBack::InOrder {
            torn: torn(&mut coin),
        };
        tally.cut(&run, &mut replay, cut(torn_write)).await;
        let by_chance = WrittenBack::Some {
            seed: coin.u64(..),
            torn: torn(&mut coin),
        };
        tally.cut(&run, &mut replay, cut(by_chance)).await;
    }
    tally.assert_none_failed();
    assert!(lost > 0, "no cut lost anything written but not synced");
    eprintln!(
        "cut after each of the {} disk calls of a run of {} acknowledged writes and {} \
         uploads; {lost} cuts lost unsynced commits",
        run.journal.len(),
        run.pod_acks.len(),
        run.upload_acks.len()
    );
}

/// `runs` runs of the longer workload, each cut at `cuts` random points in
/// one of the three ways at random.
async fn random_cuts_of_longer_runs(runs: u64, cuts: usize) {
    let mut tally = Tally::default();
    for seed in 0..runs {
        let run = run::run(LONG).await;
        assert_trims(&run, 2);
        let mut coin = fastrand::Rng::with_seed(seed);
        let mut afters: Vec<usize> = (0..cuts)
            .map(|_| coin.usize(0..=run.journal.len()))
            .collect();
        afters.sort_unstable();
        let mut replay = Replay::new(&run.journal);
        for after in afters {
            let written_back = match coin.u8(0..3) {
                0 => WrittenBack::Nothing,
                1 => WrittenBack::InOrder {
                    torn: torn(&mut coin),
                },
                _ => WrittenBack::Some {
                    seed: coin.u64(..),
                    torn: torn(&mut coin),
                },
            };
            let cut = Cut {
                after,
                written_back,
            };
            tally.cut(&run, &mut replay, cut).await;
        }
    }
    tally.assert_none_failed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_cuts_of_longer_runs_quick() {
    random_cuts_of_longer_runs(2, 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 40 runs of 400 cuts; run with --ignored"]
async fn random_cuts_of_longer_runs_many() {
    random_cuts_of_longer_runs(40, 400).await;
}
