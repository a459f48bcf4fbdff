//! Readers, writers, deleters and the trimmer on many threads at once: no
//! lost posts, no duplicate timeline entries, no deadlock.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use foryou_server::clock::SystemClock;
use foryou_server::thunder::{
    IdSet, LightPost, PostDelete, PostStore, RetrievalQuery, ThunderParams,
};

const WRITERS: i64 = 4;
const POSTS_PER_WRITER: i64 = 5000;
const AUTHORS: i64 = 50;

#[test]
fn concurrent_readers_and_writers_lose_nothing() {
    let store = Arc::new(PostStore::new(
        ThunderParams::default(),
        Arc::new(SystemClock::new()),
    ));
    let now = store.clock().unix_s();
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    // Every id ≤ this has had its delete applied.
    let deleted_upto = Arc::new(AtomicI64::new(0));
    let mut handles = Vec::new();

    // Writers: each inserts its own ids, in small batches, every post twice
    // (duplicates must not double timeline entries); retweets of other
    // writers' posts exercise the video check's cross-map lookup.
    for w in 0..WRITERS {
        let (s, done) = (store.clone(), done_tx.clone());
        handles.push(std::thread::spawn(move || {
            for chunk in (0..POSTS_PER_WRITER).collect::<Vec<_>>().chunks(50) {
                let batch: Vec<LightPost> = chunk
                    .iter()
                    .map(|i| {
                        let id = 1 + w * POSTS_PER_WRITER + i;
                        let author = 1 + (id % AUTHORS);
                        if i % 10 == 9 {
                            LightPost::retweet(
                                id,
                                author,
                                now - 100,
                                id - 5,
                                1 + ((id - 5) % AUTHORS),
                            )
                        } else if i % 7 == 0 {
                            LightPost::original(id, author, now - 100).with_video()
                        } else {
                            LightPost::original(id, author, now - 100)
                        }
                    })
                    .collect();
                s.insert_posts(batch.clone());
                s.insert_posts(batch);
            }
            drop(done);
        }));
    }
    // A deleter removes every 13th id (some before their insert).
    {
        let (s, done, upto) = (store.clone(), done_tx.clone(), deleted_upto.clone());
        handles.push(std::thread::spawn(move || {
            let ids: Vec<PostDelete> = (1..=WRITERS * POSTS_PER_WRITER)
                .filter(|id| id % 13 == 0)
                .map(|post_id| PostDelete {
                    post_id,
                    deleted_at: now,
                })
                .collect();
            for chunk in ids.chunks(20) {
                s.mark_as_deleted(chunk);
                if let Some(last) = chunk.last() {
                    upto.store(last.post_id, Ordering::SeqCst);
                }
            }
            drop(done);
        }));
    }
    // Readers and the trimmer run until the writers are done.
    for r in 0..4 {
        let (s, stop, upto) = (store.clone(), stop.clone(), deleted_upto.clone());
        handles.push(std::thread::spawn(move || {
            let users: Vec<i64> = (1..=AUTHORS).collect();
            let exclude = IdSet::default();
            let mut reads = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let deleted_before = upto.load(Ordering::SeqCst);
                let q = RetrievalQuery {
                    user_ids: &users,
                    exclude: &exclude,
                    requester: r,
                    start: s.clock().monotonic(),
                };
                let got = if r % 2 == 0 {
                    s.get_all_posts_by_users(&q)
                } else {
                    s.get_videos_by_users(&q)
                };
                for p in &got.posts {
                    assert!(
                        p.post_id % 13 != 0 || p.post_id > deleted_before,
                        "post {} served after its delete",
                        p.post_id
                    );
                }
                reads += 1;
            }
            assert!(reads > 0);
        }));
    }
    {
        let (s, stop) = (store.clone(), stop.clone());
        handles.push(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                s.trim_old_posts();
                std::thread::sleep(Duration::from_millis(1));
            }
        }));
    }
    drop(done_tx);
    // The writers and the deleter finish (the channel closes) or we are stuck.
    let finished = done_rx.recv_timeout(Duration::from_secs(120));
    assert!(
        matches!(
            finished,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        ),
        "writers did not finish in 120 s: deadlock?"
    );
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.join().expect("no thread panicked");
    }

    assert_eq!(
        store.check_deleted_flags(),
        Ok(()),
        "every timeline copy of a deleted post is flagged, and only those"
    );
    store.finalize_init();
    let snap = store.snapshot();
    let total = WRITERS * POSTS_PER_WRITER;
    let live: HashSet<i64> = (1..=total).filter(|id| id % 13 != 0).collect();
    let stored: HashSet<i64> = snap.posts.keys().copied().collect();
    assert_eq!(
        stored, live,
        "every live post stored, every deleted one gone"
    );
    let mut seen = HashSet::new();
    for (author, timeline) in snap.original.iter().chain(snap.secondary.iter()) {
        if *author < 0 {
            continue; // delete markers
        }
        for t in timeline {
            assert!(
                seen.insert(t.post_id),
                "post {} twice in timelines",
                t.post_id
            );
        }
    }
    // Deleted ids created after their delete never reached a timeline;
    // every other id has exactly one entry.
    assert!(live.iter().all(|id| seen.contains(id)));
    assert_eq!(store.stats().deleted_posts as i64, total / 13);
}
