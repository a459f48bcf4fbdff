//! `foryou feed`: ask a running server for a user's feed and print it.

use anyhow::Context;
use clap::Args;
use foryou_proto::v1 as pb;
use foryou_proto::v1::scored_posts_service_client::ScoredPostsServiceClient;
use foryou_server::grpc::scored_posts::{OUTSIDE_STAGES_KEY, TOTAL_KEY};

/// `foryou feed --user ID`.
#[derive(Debug, Args)]
pub struct FeedArgs {
    /// Server address.
    #[arg(long, env = "FORYOU_ADDR", default_value = "http://127.0.0.1:50052")]
    addr: String,
    /// The viewer.
    #[arg(long)]
    user: i64,
    /// Posts wanted (0: the server's RESULT_SIZE).
    #[arg(long, default_value_t = 0)]
    size: u32,
    /// Only in-network posts.
    #[arg(long)]
    in_network_only: bool,
    /// Print the response as JSON.
    #[arg(long)]
    json: bool,
    /// Also print per-stage counts, removals by filter and timings.
    #[arg(long)]
    debug: bool,
}

/// Runs `foryou feed`.
pub fn run(args: FeedArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(feed(args))
}

async fn feed(args: FeedArgs) -> anyhow::Result<()> {
    let mut client = ScoredPostsServiceClient::connect(args.addr.clone())
        .await
        .with_context(|| format!("cannot connect to {}", args.addr))?
        .max_decoding_message_size(128 << 20);
    let started = std::time::Instant::now();
    let resp = client
        .get_scored_posts(pb::ScoredPostsQuery {
            viewer_id: args.user,
            result_size: args.size,
            in_network_only: args.in_network_only,
            // Always ask for the probabilities; --debug decides what we print.
            debug: true,
            ..Default::default()
        })
        .await
        .map_err(|s| anyhow::anyhow!("GetScoredPosts failed: {:?}: {}", s.code(), s.message()))?
        .into_inner();
    let elapsed = started.elapsed();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&resp, args.debug))?
        );
        return Ok(());
    }
    print_table(&resp);
    println!(
        "{} posts for user {} in {:.1} ms",
        resp.scored_posts.len(),
        args.user,
        elapsed.as_secs_f64() * 1e3
    );
    if args.debug
        && let Some(d) = &resp.debug
    {
        print_debug(d);
    }
    Ok(())
}

/// The three most likely positive actions, "fav 0.62 click 0.41 dwell 0.33".
fn top_actions(s: Option<&pb::PhoenixScores>) -> String {
    let Some(s) = s else {
        return String::new();
    };
    let mut v: Vec<(&str, f64)> = [
        ("fav", s.favorite_score),
        ("reply", s.reply_score),
        ("repost", s.repost_score),
        ("click", s.click_score),
        ("profile", s.profile_click_score),
        ("vqv", s.vqv_score),
        ("share", s.share_score),
        ("dwell", s.dwell_score),
        ("quote", s.quote_score),
        ("follow", s.follow_author_score),
    ]
    .into_iter()
    .filter_map(|(n, p)| p.map(|p| (n, p)))
    .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.iter()
        .take(3)
        .map(|(n, p)| format!("{n} {p:.2}"))
        .collect::<Vec<_>>()
        .join("  ")
}

fn served(t: i32) -> &'static str {
    match pb::ServedType::try_from(t) {
        Ok(pb::ServedType::ForYouInNetwork) => "in-network",
        Ok(pb::ServedType::ForYouPhoenixRetrieval) => "phoenix",
        _ => "-",
    }
}

fn print_table(resp: &pb::ScoredPostsResponse) {
    println!(
        "{:>4}  {:>19}  {:<24}  {:>9}  {:<3}  {:<10}  top actions",
        "rank", "post", "author", "score", "in", "served"
    );
    for (i, p) in resp.scored_posts.iter().enumerate() {
        let author = p
            .screen_names
            .get(&p.author_id)
            .map_or_else(|| p.author_id.to_string(), |n| format!("@{n}"));
        let mut note = top_actions(p.phoenix_scores.as_ref());
        if let Some(r) = &p.visibility_reason {
            note.push_str(&format!("  [{r}]"));
        }
        if p.retweeted_tweet_id.unwrap_or(0) != 0 {
            note.push_str("  (retweet)");
        }
        println!(
            "{:>4}  {:>19}  {:<24}  {:>9.5}  {:<3}  {:<10}  {}",
            i + 1,
            p.tweet_id,
            author,
            p.score,
            if p.in_network { "yes" } else { "no" },
            served(p.served_type),
            note
        );
    }
}

fn print_debug(d: &pb::PipelineDebug) {
    println!("\ncandidates after each stage:");
    let mut counts: Vec<_> = d.stage_counts.iter().collect();
    counts.sort();
    for (k, v) in counts {
        let ms = d
            .stage_ms
            .get(k)
            .map_or(String::new(), |ms| format!("  {ms:.2} ms"));
        println!("  {k:<55} {v:>6}{ms}");
    }
    if let (Some(total), Some(outside)) = (
        d.stage_ms.get(TOTAL_KEY),
        d.stage_ms.get(OUTSIDE_STAGES_KEY),
    ) {
        println!("server time: {total:.2} ms, of which {outside:.2} ms outside the stages");
    }
    println!("removed by filter:");
    let mut removed: Vec<_> = d.removed_by_filter.iter().collect();
    removed.sort();
    for (k, v) in removed {
        println!("  {k:<55} {v:>6}");
    }
}

fn to_json(resp: &pb::ScoredPostsResponse, debug: bool) -> serde_json::Value {
    let posts: Vec<serde_json::Value> = resp
        .scored_posts
        .iter()
        .map(|p| {
            let s = p.phoenix_scores.as_ref();
            serde_json::json!({
                "tweet_id": p.tweet_id,
                "author_id": p.author_id,
                "retweeted_tweet_id": p.retweeted_tweet_id,
                "retweeted_user_id": p.retweeted_user_id,
                "in_reply_to_tweet_id": p.in_reply_to_tweet_id,
                "score": p.score,
                "in_network": p.in_network,
                "served_type": served(p.served_type),
                "last_scored_timestamp_ms": p.last_scored_timestamp_ms,
                "prediction_request_id": p.prediction_request_id,
                "ancestors": p.ancestors,
                "screen_names": p.screen_names,
                "visibility_reason": p.visibility_reason,
                "favorite_score": s.and_then(|s| s.favorite_score),
                "reply_score": s.and_then(|s| s.reply_score),
                "dwell_time": s.and_then(|s| s.dwell_time),
            })
        })
        .collect();
    let mut out = serde_json::json!({ "scored_posts": posts });
    if debug && let Some(d) = &resp.debug {
        out["debug"] = serde_json::json!({
            "stage_counts": d.stage_counts,
            "removed_by_filter": d.removed_by_filter,
            "stage_ms": d.stage_ms,
        });
    }
    out
}
