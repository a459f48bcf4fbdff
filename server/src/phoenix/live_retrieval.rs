//! [`LiveRetrieval`]: the retrieval corpus that follows the post stream.
//! It is the stream's second consumer ([`PostFeed`]: attached to the
//! Thunder store, or fed by a Phoenix server's own `IngestEvents`), hands
//! each batch to the index writer thread (`index_writer`: candidate tower
//! in micro-batches, then publish), and gives retrieval the latest
//! snapshot ([`IndexReader`], a [`foryou_engine::PostSearch`]).
//!
//! What enters: creates that are not retweets (a retweet's candidate is its
//! source post, as in the corpus encoded at start before), created within
//! the retention window and at most `max_future_skew_ms` ahead of the
//! clock; deletes of any post. The hand-off channel is bounded
//! ([`QUEUE_BATCHES`]): a stream faster than the encoder waits at
//! `publish` (back-pressure on the ingest, never a dropped post).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, bounded};
use foryou_engine::index::{
    DeviceSegments, IndexConfig, IndexReader, IndexStats, LiveIndex, NewPost, RowDevice,
};
use foryou_engine::{CorpusItem, EngineError, PhoenixRetriever};

use super::index_writer::{IndexWriter, IndexedPost, WriterMsg, encoder_pool, offered};
use crate::clock::Clock;
use crate::thunder::{LightPost, PostDelete, PostFeed};

/// Batches the hand-off channel holds before `publish` waits.
pub const QUEUE_BATCHES: usize = 1024;

/// Thunder's default: posts up to 10 minutes ahead of the clock are kept.
pub const DEFAULT_MAX_FUTURE_SKEW_MS: i64 = 600_000;

/// Precomputed representations loaded into the index at start (an npz
/// corpus): `reps` holds one row of the index's width per item.
#[derive(Debug, Default)]
pub struct Preencoded {
    /// The posts.
    pub items: Vec<CorpusItem>,
    /// Their representations, row-major.
    pub reps: Vec<f32>,
    /// Their creation time, epoch ms (an npz carries none: the load time).
    pub created_ms: i64,
}

/// The live retrieval index: writer thread, hand-off channel and reader.
#[derive(Debug)]
pub struct LiveRetrieval {
    tx: Sender<WriterMsg>,
    reader: IndexReader,
    stats: Arc<Mutex<IndexStats>>,
    /// Cleared when the writer thread ends (a panic included).
    writing: Arc<AtomicBool>,
}

/// Clears the flag when the writer thread ends, however it ends; a panic
/// is said once as an error (the index then serves what it last published
/// and applies no further creates or deletes), a shutdown is not.
struct WriterAlive(Arc<AtomicBool>);

impl Drop for WriterAlive {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
        metrics::gauge!(WRITER_UP).set(0.0);
        if std::thread::panicking() {
            tracing::error!(
                "the retrieval index writer has stopped: no new posts or deletes reach the index"
            );
        }
    }
}

/// Gauge: 1 while the index writer runs, 0 once it has stopped.
pub const WRITER_UP: &str = "foryou_index_writer_up";

impl LiveRetrieval {
    /// Starts the writer over an empty index of `config` (its width must
    /// be the retriever's `emb_size`), with `initial` inserted first;
    /// searched on the CPU.
    pub fn start(
        retriever: Arc<PhoenixRetriever>,
        config: IndexConfig,
        clock: Arc<dyn Clock>,
        max_future_skew_ms: i64,
        initial: Option<Preencoded>,
    ) -> Result<Self, EngineError> {
        Self::start_on(retriever, config, clock, max_future_skew_ms, initial, None)
    }

    /// [`Self::start`], with the sealed segments held and searched on
    /// `device` when given (`PhoenixRetriever::row_device`: the GPU).
    pub fn start_on(
        retriever: Arc<PhoenixRetriever>,
        config: IndexConfig,
        clock: Arc<dyn Clock>,
        max_future_skew_ms: i64,
        initial: Option<Preencoded>,
        device: Option<Box<dyn RowDevice>>,
    ) -> Result<Self, EngineError> {
        let emb = retriever.config().emb_size;
        if config.dim != emb {
            return Err(EngineError::Input(format!(
                "index width {} differs from the retriever's emb_size {emb}",
                config.dim
            )));
        }
        let mut index = LiveIndex::new(config)?;
        if let Some(p) = initial {
            if p.reps.len() != p.items.len() * emb {
                return Err(EngineError::Input(format!(
                    "{} representation values for {} posts of width {emb}",
                    p.reps.len(),
                    p.items.len()
                )));
            }
            let posts: Vec<NewPost<'_>> = p
                .items
                .iter()
                .zip(p.reps.chunks(emb))
                .map(|(&item, representation)| NewPost {
                    item,
                    created_ms: p.created_ms,
                    representation,
                })
                .collect();
            let r = index.insert(&posts, clock.unix_ms())?;
            offered("inserted", r.inserted);
            offered("duplicate", r.duplicates);
        }
        let device = device.map(|d| Arc::new(DeviceSegments::new(d, index.config())));
        let reader = match &device {
            Some(d) => index.reader().on_device(Arc::clone(d)),
            None => index.reader(),
        };
        let stats = Arc::new(Mutex::new(index.stats()));
        let (tx, rx) = bounded(QUEUE_BATCHES);
        let pool = encoder_pool()
            .map_err(|e| EngineError::Input(format!("cannot start the index encoder: {e}")))?;
        let writer = IndexWriter {
            pool,
            index,
            retriever,
            clock,
            max_future_skew_ms,
            stats: stats.clone(),
            last: IndexStats::default(),
            device,
        };
        let writing = Arc::new(AtomicBool::new(true));
        let alive = WriterAlive(writing.clone());
        metrics::gauge!(WRITER_UP).set(1.0);
        std::thread::Builder::new()
            .name("index-writer".into())
            .spawn(move || {
                let _alive = alive;
                writer.run(rx)
            })
            .map_err(|e| EngineError::Input(format!("cannot start the index writer: {e}")))?;
        Ok(Self {
            tx,
            reader,
            stats,
            writing,
        })
    }

    /// Whether the writer thread still runs. Once false (it panicked) the
    /// index is frozen: deleted posts stay retrievable, so health reports
    /// the retrieval services NOT_SERVING (`roles/readiness.rs`).
    pub fn is_writing(&self) -> bool {
        self.writing.load(Ordering::SeqCst)
    }

    /// Tests: makes the writer thread panic.
    #[cfg(test)]
    pub(crate) fn crash_writer(&self) {
        let _ = self.tx.send(WriterMsg::Crash);
    }

    /// The latest snapshot's handle (what retrieval searches).
    pub fn reader(&self) -> IndexReader {
        self.reader.clone()
    }

    /// The writer's counters and sizes after its last step.
    pub fn stats(&self) -> IndexStats {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Hands new posts and deletes to the writer (waits while its queue is
    /// full). False when the writer has stopped (its thread panicked).
    pub fn send(&self, creates: Vec<IndexedPost>, deletes: Vec<i64>) -> bool {
        if creates.is_empty() && deletes.is_empty() {
            return true;
        }
        let msg = WriterMsg::Posts {
            creates,
            deletes,
            sent: Instant::now(),
        };
        self.tx.send(msg).is_ok()
    }

    /// Waits until everything handed over before is searchable, at most
    /// `timeout`. False on a timeout or a stopped writer.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = bounded(1);
        self.tx.send(WriterMsg::Flush(done)).is_ok() && wait.recv_timeout(timeout).is_ok()
    }
}

/// The index's view of a post event: `None` for a retweet.
pub fn indexed(p: &LightPost) -> Option<IndexedPost> {
    (!p.is_retweet).then(|| IndexedPost {
        item: CorpusItem {
            post_id: p.post_id,
            author_id: p.author_id,
        },
        created_ms: p.created_at.saturating_mul(1000),
    })
}

impl PostFeed for LiveRetrieval {
    fn publish(&self, creates: &[LightPost], deletes: &[PostDelete]) {
        let posts: Vec<IndexedPost> = creates.iter().filter_map(indexed).collect();
        offered("retweet", creates.len() - posts.len());
        let ids = deletes.iter().map(|d| d.post_id).collect();
        if !self.send(posts, ids) {
            // Said once, by the writer's exit; each lost batch is counted.
            offered("writer_stopped", creates.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use foryou_engine::corpus::Query;
    use foryou_engine::index::{Format, IndexConfig};
    use foryou_engine::{Corpus, PostSearch};

    use super::*;
    use crate::clock::ManualClock;

    const NOW_S: i64 = 1_800_000_000;
    const WAIT: Duration = Duration::from_secs(30);

    /// A demo-shaped retriever with 64-row hash tables.
    fn retriever() -> Arc<PhoenixRetriever> {
        Arc::new(crate::phoenix::models::small_demo_models().retriever)
    }

    fn start(
        r: &Arc<PhoenixRetriever>,
        clock: &Arc<ManualClock>,
        edit: impl FnOnce(&mut IndexConfig),
    ) -> LiveRetrieval {
        let mut config = IndexConfig::new(r.config().emb_size, Format::F32);
        config.retention_ms = 3_600_000;
        edit(&mut config);
        LiveRetrieval::start(
            r.clone(),
            config,
            clock.clone(),
            DEFAULT_MAX_FUTURE_SKEW_MS,
            None,
        )
        .expect("start")
    }

    fn post(id: i64, author: i64, created_s: i64) -> LightPost {
        LightPost::original(id, author, created_s)
    }

    /// Every live post id, by a search deep enough to return them all.
    fn search_all(r: &PhoenixRetriever, live: &LiveRetrieval) -> Vec<i64> {
        let dim = r.config().emb_size;
        let mut q = vec![0.0; dim];
        q[0] = 1.0;
        let query = Query {
            k: 1000,
            ..Query::default()
        };
        let mut ids: Vec<i64> = live
            .reader()
            .search(r, &q, &[query])
            .expect("search")
            .remove(0)
            .into_iter()
            .map(|h| h.post_id)
            .collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn streamed_posts_are_searchable_after_a_flush_with_the_static_corpus_scores() {
        let r = retriever();
        let clock = Arc::new(ManualClock::new(NOW_S));
        let live = start(&r, &clock, |_| {});
        let mut posts: Vec<LightPost> = (1..=40).map(|i| post(100 + i, i % 5, NOW_S - i)).collect();
        // A retweet is not a corpus post; its source is.
        posts.push(LightPost {
            is_retweet: true,
            ..post(999, 3, NOW_S)
        });
        live.publish(&posts[..20], &[]);
        live.publish(&posts[20..], &[]);
        assert!(live.flush(WAIT));
        assert_eq!(live.stats().posts, 40);
        assert_eq!(search_all(&r, &live), (101..=140).collect::<Vec<_>>());

        // Same posts, encoded at once into the immutable corpus: same hits.
        let items: Vec<CorpusItem> = posts[..40]
            .iter()
            .map(|p| CorpusItem {
                post_id: p.post_id,
                author_id: p.author_id,
            })
            .collect();
        let corpus = Corpus::build(&r, items).expect("corpus");
        let user: Vec<f32> = (0..r.config().emb_size)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0)
            .collect();
        let q = [Query {
            k: 10,
            excluded_authors: &[2],
            ..Query::default()
        }];
        let want = corpus.search(&r, &user, &q).expect("corpus search");
        let got = live.reader().search(&r, &user, &q).expect("index search");
        // The same posts in the same order; scores to summation order.
        assert_eq!(got[0].len(), 10);
        for (g, w) in got[0].iter().zip(&want[0]) {
            assert_eq!((g.post_id, g.author_id), (w.post_id, w.author_id));
            assert!((g.score - w.score).abs() < 1e-6, "{g:?} vs {w:?}");
        }
    }

    #[test]
    fn sealed_segments_on_a_device_answer_as_the_cpu_scan_does() {
        use foryou_engine::index::CpuRowDevice;
        let r = retriever();
        let clock = Arc::new(ManualClock::new(NOW_S));
        let mut config = IndexConfig::new(r.config().emb_size, Format::F32);
        config.retention_ms = 3_600_000;
        config.segment_rows = 64;
        let on_device = LiveRetrieval::start_on(
            r.clone(),
            config.clone(),
            clock.clone(),
            DEFAULT_MAX_FUTURE_SKEW_MS,
            None,
            Some(Box::new(CpuRowDevice::new())),
        )
        .expect("start");
        let on_cpu = start(&r, &clock, |c| c.segment_rows = 64);
        let posts: Vec<LightPost> = (1..=300).map(|i| post(i, i % 7, NOW_S - i)).collect();
        let del = |id| PostDelete {
            post_id: id,
            deleted_at: NOW_S,
        };
        for live in [&on_device, &on_cpu] {
            live.publish(&posts[..150], &[]);
            live.publish(&posts[150..], &[del(5), del(77)]);
            assert!(live.flush(WAIT));
        }
        let user: Vec<f32> = (0..r.config().emb_size)
            .map(|i| ((i * 5 % 13) as f32 - 6.0) / 10.0)
            .collect();
        let q = [Query {
            k: 40,
            excluded_authors: &[3],
            ..Query::default()
        }];
        let got = on_device.reader().search(&r, &user, &q).expect("device");
        let want = on_cpu.reader().search(&r, &user, &q).expect("cpu");
        assert_eq!(got[0].len(), 40);
        for (g, w) in got[0].iter().zip(&want[0]) {
            assert_eq!(g.post_id, w.post_id);
            assert!((g.score - w.score).abs() < 1e-5, "{g:?} vs {w:?}");
        }
        assert!(got[0].iter().all(|h| h.author_id != 3 && h.post_id != 5));
        let device = on_device.reader().device().map(|d| d.stats());
        assert_eq!(device.map(|d| d.segments), Some(4), "{device:?}");
        assert!(on_cpu.reader().device().is_none());
    }

    #[test]
    fn deletes_hide_posts_and_a_delete_before_its_create_wins() {
        let r = retriever();
        let clock = Arc::new(ManualClock::new(NOW_S));
        let live = start(&r, &clock, |_| {});
        live.publish(&[post(1, 1, NOW_S), post(2, 1, NOW_S)], &[]);
        let del = |id| PostDelete {
            post_id: id,
            deleted_at: NOW_S,
        };
        live.publish(&[], &[del(1), del(3)]);
        live.publish(&[post(3, 1, NOW_S)], &[]);
        assert!(live.flush(WAIT));
        assert_eq!(search_all(&r, &live), vec![2]);
        // The writer may take the three batches as one (deletes first) or
        // one by one: either way both deleted ids were refused or removed.
        let s = live.stats();
        assert_eq!(s.deleted + s.deleted_before_insert, 2);
    }

    #[test]
    fn posts_expire_by_the_world_clock_and_future_ones_are_refused() {
        let r = retriever();
        let clock = Arc::new(ManualClock::new(NOW_S));
        let live = start(&r, &clock, |_| {}); // retention 1 h
        live.publish(
            &[
                post(1, 1, NOW_S - 3_000),
                post(2, 1, NOW_S - 60),
                post(3, 1, NOW_S - 7_200), // already past retention
                post(4, 1, NOW_S + 3_600), // beyond the 10 min skew
            ],
            &[],
        );
        assert!(live.flush(WAIT));
        assert_eq!(search_all(&r, &live), vec![1, 2]);
        clock.advance(Duration::from_secs(1_000)); // post 1 is now 4000 s old
        assert!(live.flush(WAIT), "a flush moves the clock too");
        assert_eq!(search_all(&r, &live), vec![2]);
        let s = live.stats();
        assert_eq!((s.expired, s.expired_on_insert), (1, 1));
    }

    #[test]
    fn capacity_evicts_the_oldest_inserted_first() {
        let r = retriever();
        let clock = Arc::new(ManualClock::new(NOW_S));
        let live = start(&r, &clock, |c| {
            c.capacity = 3;
            c.segment_rows = 2;
        });
        for id in 1..=5 {
            // Inserted in id order; creation times in the other order, so
            // "oldest" must mean inserted first.
            live.publish(&[post(id, 1, NOW_S - id)], &[]);
            assert!(live.flush(WAIT));
        }
        assert_eq!(search_all(&r, &live), vec![3, 4, 5]);
        assert_eq!(live.stats().evictions, 2);
    }

    #[test]
    fn a_start_corpus_must_match_the_width() {
        let r = retriever();
        let clock = Arc::new(ManualClock::new(NOW_S));
        let dim = r.config().emb_size;
        let initial = Preencoded {
            items: vec![CorpusItem {
                post_id: 1,
                author_id: 1,
            }],
            reps: vec![0.5; dim + 1],
            created_ms: NOW_S * 1000,
        };
        let e = LiveRetrieval::start(
            r.clone(),
            IndexConfig::new(dim, Format::Int8),
            clock.clone(),
            0,
            Some(initial),
        )
        .expect_err("a short row");
        assert!(e.to_string().contains("representation values"), "{e}");
        let narrow = IndexConfig::new(dim + 1, Format::F32);
        let e = LiveRetrieval::start(r, narrow, clock, 0, None).expect_err("width");
        assert!(e.to_string().contains("emb_size"), "{e}");
    }

    #[test]
    fn a_crashed_writer_is_reported_and_the_last_snapshot_keeps_answering() {
        let (r, clock) = (retriever(), Arc::new(ManualClock::new(NOW_S)));
        let live = start(&r, &clock, |_| {});
        live.publish(&[post(1, 7, NOW_S - 10), post(2, 8, NOW_S - 20)], &[]);
        assert!(live.flush(WAIT));
        assert!(live.is_writing());
        live.crash_writer();
        let t = Instant::now();
        while live.is_writing() {
            assert!(t.elapsed() < Duration::from_secs(10), "still writing");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            !live.send(Vec::new(), vec![1]),
            "nothing reaches a stopped writer"
        );
        live.publish(&[post(3, 9, NOW_S)], &[]); // counted, no panic
        assert!(!live.flush(Duration::from_millis(100)));
        assert_eq!(
            search_all(&r, &live),
            vec![1, 2],
            "the last snapshot still answers"
        );
    }
}
