//! Batcher semantics with a fake model of known cost: batch size bounds,
//! the queue delay, deadlines, cancellation, overload, routing under
//! concurrency, bucket separation and model failures.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foryou_engine::EngineError;
use foryou_engine::batcher::{BatchError, BatchModel, BatchPolicy, Batcher};

/// Doubles each input after `cost`; records every batch it computed. With a
/// gate, its first batch announces itself and then blocks until the gate
/// opens (to hold the batching thread while a test fills the queue).
struct Fake {
    cost: Duration,
    batches: Arc<Mutex<Vec<Vec<i64>>>>,
    gate: Mutex<Option<Gate>>,
}

/// Holds the first batch: `entered` fires when it starts, `open` lets it go.
struct Gate {
    entered: mpsc::Sender<()>,
    open: mpsc::Receiver<()>,
}

/// The test's side of a [`Gate`].
struct GateHandle {
    entered: mpsc::Receiver<()>,
    open: mpsc::Sender<()>,
}

impl GateHandle {
    fn new() -> (Gate, Self) {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (open_tx, open_rx) = mpsc::channel();
        (
            Gate {
                entered: entered_tx,
                open: open_rx,
            },
            Self {
                entered: entered_rx,
                open: open_tx,
            },
        )
    }

    /// Blocks until the model is inside its first batch.
    fn wait_entered(&self) {
        self.entered
            .recv_timeout(Duration::from_secs(60))
            .expect("the batching thread reached the model");
    }

    fn open(&self) {
        self.open.send(()).expect("gate");
    }
}

impl BatchModel for Fake {
    type Request = i64;
    type Response = i64;

    fn bucket(r: &i64) -> u64 {
        // Negative requests form their own bucket.
        u64::from(*r < 0)
    }

    fn run(&self, batch: Vec<i64>) -> Result<Vec<i64>, EngineError> {
        let gate = self.gate.lock().expect("lock").take();
        if let Some(g) = gate {
            let _ = g.entered.send(());
            // Bounded, so a failed assertion (which drops the batcher, and
            // joins this thread, before the test's gate handle) cannot hang.
            let _ = g.open.recv_timeout(Duration::from_secs(60));
        }
        if batch.contains(&FAIL) {
            return Err(EngineError::Input("unlucky".into()));
        }
        if batch.contains(&PANIC) {
            panic!("model bug");
        }
        std::thread::sleep(self.cost);
        self.batches.lock().expect("lock").push(batch.clone());
        Ok(batch.iter().map(|x| x * 2).collect())
    }
}

type Batches = Arc<Mutex<Vec<Vec<i64>>>>;

/// A request the fake model fails on, and one it panics on.
const FAIL: i64 = -13_000_013;
const PANIC: i64 = -66_600_666;

fn start(policy: BatchPolicy, gate: Option<Gate>) -> (Batcher<Fake>, Batches) {
    let batches = Batches::default();
    let fake = Fake {
        cost: Duration::from_millis(2),
        batches: batches.clone(),
        gate: Mutex::new(gate),
    };
    (Batcher::start(fake, policy).expect("thread"), batches)
}

fn wait<R>(t: foryou_engine::batcher::Ticket<R>) -> Result<R, BatchError> {
    t.blocking_recv().unwrap_or(Err(BatchError::Stopped))
}

fn policy(max: usize, delay_ms: u64, cap: usize) -> BatchPolicy {
    BatchPolicy {
        max_batch_size: max,
        max_queue_delay: Duration::from_millis(delay_ms),
        queue_capacity: cap,
        workers: 1,
    }
}

#[test]
fn batches_never_exceed_the_max_and_every_caller_gets_its_own_answer() {
    let (b, batches) = start(policy(4, 5, 10_000), None);
    let b = Arc::new(b);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let b = b.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    let x = t * 1000 + i;
                    let got = wait(b.submit(x, None).expect("admitted")).expect("answer");
                    assert_eq!(got, 2 * x, "answer routed to its caller");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no panic");
    }
    let batches = batches.lock().expect("lock");
    assert!(batches.iter().all(|b| (1..=4).contains(&b.len())));
    assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 800);
    assert!(
        batches.iter().any(|b| b.len() > 1),
        "concurrent callers share batches"
    );
    assert_eq!(
        b.stats()
            .max_batch
            .load(std::sync::atomic::Ordering::Relaxed) as usize,
        batches.iter().map(Vec::len).max().unwrap_or(0)
    );
}

#[test]
fn a_lone_request_waits_about_the_queue_delay_not_forever() {
    let (b, batches) = start(policy(64, 30, 16), None);
    let t0 = Instant::now();
    assert_eq!(wait(b.submit(21, None).expect("admitted")).ok(), Some(42));
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(30),
        "it waited for company: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "but not forever: {waited:?}"
    );
    assert_eq!(batches.lock().expect("lock").len(), 1);
}

#[test]
fn full_batches_go_without_waiting_out_the_delay() {
    // A minute of queue delay: only full batches can explain a quick answer.
    let (b, batches) = start(policy(3, 60_000, 16), None);
    let t0 = Instant::now();
    let tickets: Vec<_> = (1..=6)
        .map(|x| b.submit(x, None).expect("admitted"))
        .collect();
    for (t, x) in tickets.into_iter().zip(1..=6) {
        assert_eq!(wait(t).ok(), Some(2 * x));
    }
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    let sizes: Vec<usize> = batches.lock().expect("lock").iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![3, 3]);
}

#[test]
fn expired_requests_are_answered_without_compute() {
    let (gate, handle) = GateHandle::new();
    let (b, batches) = start(policy(1, 0, 16), Some(gate));
    let holder = b.submit(1, None).expect("admitted");
    handle.wait_entered();
    let expired = b
        .submit(7, Some(Instant::now() + Duration::from_millis(1)))
        .expect("admitted");
    std::thread::sleep(Duration::from_millis(20));
    handle.open();
    assert_eq!(wait(holder).ok(), Some(2));
    assert!(matches!(
        wait(expired),
        Err(BatchError::DeadlineExceeded(_))
    ));
    drop(b);
    assert!(
        batches
            .lock()
            .expect("lock")
            .iter()
            .all(|b| !b.contains(&7)),
        "never computed"
    );
}

#[test]
fn a_request_whose_caller_left_is_dropped_before_compute() {
    let (gate, handle) = GateHandle::new();
    let (b, batches) = start(policy(1, 0, 16), Some(gate));
    let holder = b.submit(1, None).expect("admitted");
    handle.wait_entered();
    drop(b.submit(9, None).expect("admitted")); // the caller gives up
    let kept = b.submit(10, None).expect("admitted");
    handle.open();
    assert_eq!(wait(holder).ok(), Some(2));
    assert_eq!(wait(kept).ok(), Some(20));
    assert_eq!(
        b.stats()
            .cancelled
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    drop(b);
    assert!(
        batches
            .lock()
            .expect("lock")
            .iter()
            .all(|b| !b.contains(&9))
    );
}

#[test]
fn a_full_queue_rejects_at_once_and_admitted_requests_still_finish() {
    let (gate, handle) = GateHandle::new();
    let (b, _batches) = start(policy(1, 0, 2), Some(gate));
    let holder = b.submit(1, None).expect("admitted");
    handle.wait_entered(); // the thread holds `holder` at the gate
    let a = b.submit(2, None).expect("admitted");
    let c = b.submit(3, None).expect("admitted");
    let t0 = Instant::now();
    assert_eq!(b.waiting(), 2, "a and c wait, wherever they sit");
    let rejected = b.submit(4, None);
    assert!(matches!(rejected, Err(BatchError::Overloaded(2))));
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "rejection does not wait"
    );
    handle.open();
    assert_eq!(wait(holder).ok(), Some(2));
    assert_eq!(wait(a).ok(), Some(4));
    assert_eq!(wait(c).ok(), Some(6));
    assert_eq!(b.waiting(), 0);
    assert!(b.submit(5, None).is_ok(), "room again once drained");
}

#[test]
fn buckets_never_share_a_batch_and_keep_their_order() {
    let (gate, handle) = GateHandle::new();
    let (b, batches) = start(policy(8, 50, 64), Some(gate));
    let holder = b.submit(100, None).expect("admitted");
    handle.wait_entered();
    let xs = [1, -1, 2, -2, 3, -3];
    let tickets: Vec<_> = xs
        .iter()
        .map(|x| b.submit(*x, None).expect("admitted"))
        .collect();
    handle.open();
    assert_eq!(wait(holder).ok(), Some(200));
    for (t, x) in tickets.into_iter().zip(xs) {
        assert_eq!(wait(t).ok(), Some(2 * x));
    }
    drop(b);
    let arrival = [100, 1, -1, 2, -2, 3, -3];
    let position = |x: &i64| arrival.iter().position(|a| a == x).expect("submitted");
    for batch in batches.lock().expect("lock").iter() {
        assert!(
            batch.iter().all(|x| *x < 0) || batch.iter().all(|x| *x >= 0),
            "{batch:?}"
        );
        let order: Vec<usize> = batch.iter().map(position).collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "arrival order: {batch:?}"
        );
    }
}

#[test]
fn a_model_error_or_panic_fails_its_batch_and_the_thread_goes_on() {
    let (b, _batches) = start(policy(1, 0, 16), None);
    // The engine's error reaches the caller with its cause.
    match wait(b.submit(FAIL, None).expect("admitted")) {
        Err(BatchError::Model(e)) => {
            assert!(
                matches!(*e, EngineError::Input(ref m) if m == "unlucky"),
                "{e}"
            )
        }
        other => panic!("expected the model's error, got {other:?}"),
    }
    assert!(matches!(
        wait(b.submit(PANIC, None).expect("admitted")),
        Err(BatchError::Panicked)
    ));
    assert_eq!(
        wait(b.submit(5, None).expect("admitted")).ok(),
        Some(10),
        "still serving"
    );
}

#[test]
fn dropping_the_batcher_answers_what_was_queued() {
    let (b, _batches) = start(policy(2, 10, 16), None);
    let tickets: Vec<_> = (0..5)
        .map(|x| b.submit(x, None).expect("admitted"))
        .collect();
    drop(b);
    for (t, x) in tickets.into_iter().zip(0..5) {
        assert_eq!(wait(t).ok(), Some(2 * x));
    }
}

#[test]
fn a_second_worker_computes_while_the_first_is_busy() {
    let (gate, handle) = GateHandle::new();
    let (b, batches) = start(
        BatchPolicy {
            workers: 2,
            ..policy(1, 0, 16)
        },
        Some(gate),
    );
    let holder = b.submit(1, None).expect("admitted");
    handle.wait_entered(); // worker 1 is stuck at the gate
    assert_eq!(
        wait(b.submit(5, None).expect("admitted")).ok(),
        Some(10),
        "worker 2 answers"
    );
    handle.open();
    assert_eq!(wait(holder).ok(), Some(2));
    drop(b);
    assert_eq!(batches.lock().expect("lock").len(), 2);
}

#[test]
fn with_every_worker_busy_arrivals_join_the_next_batch() {
    let (gate, handle) = GateHandle::new();
    let (b, batches) = start(policy(8, 0, 64), Some(gate));
    let holder = b.submit(1, None).expect("admitted");
    handle.wait_entered();
    // No queue delay at all, yet these five share one batch: they arrived
    // while the only worker was busy.
    let tickets: Vec<_> = (2..=6)
        .map(|x| b.submit(x, None).expect("admitted"))
        .collect();
    handle.open();
    assert_eq!(wait(holder).ok(), Some(2));
    for (t, x) in tickets.into_iter().zip(2..=6) {
        assert_eq!(wait(t).ok(), Some(2 * x));
    }
    drop(b);
    let sizes: Vec<usize> = batches.lock().expect("lock").iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![1, 5]);
}
