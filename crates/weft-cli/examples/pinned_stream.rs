//! A stream of numbers from a producer thread to a consumer through an unbounded weft
//! channel, both threads pinned, without Lua (issue 15: the number channel's slow mode).
//!
//!   cargo run --release -p weft-cli --example pinned_stream -- 0 1   # consumer, producer CPU
//!
//! Prints, per repetition of 100,000 numbers, the rate the consumer saw (M/s) and the most
//! items queued at once (sampled every 1,000 pops). It lives in weft-cli for the allocator:
//! it runs on mimalloc, as the `weft` binary and the Lua module do (glibc's malloc adds
//! lock waits of its own when the consumer frees the queue's blocks).

use std::time::Instant;
use weft_core::channel::Channel;
use weft_core::deadline::Deadline;
use weft_core::message::{Message, Value};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ITEMS: i64 = 100_000;

/// Pin the calling thread to `cpu`, or exit with a message.
fn pin(cpu: usize) {
    extern "C" {
        fn sched_setaffinity(pid: i32, size: usize, mask: *const u64) -> i32;
    }
    let mut mask = [0u64; 16];
    if cpu >= mask.len() * 64 {
        eprintln!("pinned_stream: CPU {cpu} is out of range");
        std::process::exit(2);
    }
    mask[cpu / 64] |= 1 << (cpu % 64);
    // SAFETY: the mask is 128 readable bytes (a 1024-CPU set, glibc's cpu_set_t), and
    // pid 0 changes only the calling thread.
    if unsafe { sched_setaffinity(0, std::mem::size_of_val(&mask), mask.as_ptr()) } != 0 {
        eprintln!("pinned_stream: cannot pin a thread to CPU {cpu}");
        std::process::exit(2);
    }
}

fn cpu_arg(n: usize) -> usize {
    match std::env::args().nth(n).map(|a| a.parse()) {
        Some(Ok(c)) => c,
        _ => {
            eprintln!("usage: pinned_stream CONSUMER_CPU PRODUCER_CPU");
            std::process::exit(2);
        }
    }
}

fn main() {
    let (consumer, producer) = (cpu_arg(1), cpu_arg(2));
    pin(consumer);
    let mut runs = Vec::new();
    for _ in 0..7 {
        let channel = Channel::new(None);
        let sender = channel.clone();
        let start = Instant::now();
        let producing = std::thread::spawn(move || {
            pin(producer);
            for i in 1..=ITEMS {
                let item = Message::single(Value::Int(i));
                sender.push(item, Deadline::Never, None).expect("open");
            }
            sender.close();
        });
        let mut most_queued = 0;
        for i in 1..=ITEMS {
            let item = channel.pop(Deadline::Never, None).expect("an item");
            assert!(
                matches!(item.values[0], Value::Int(v) if v == i),
                "in order"
            );
            if i % 1000 == 0 {
                most_queued = most_queued.max(channel.len());
            }
        }
        let rate = ITEMS as f64 / start.elapsed().as_secs_f64() / 1e6;
        producing.join().expect("the producer");
        runs.push(format!("{rate:.1} ({most_queued})"));
    }
    println!(
        "consumer on CPU {consumer}, producer on CPU {producer}: M/s (most queued) per repetition: {}",
        runs.join(" ")
    );
}
