//! Pool round trips with the joiner and the worker pinned to chosen CPUs: the wait path of
//! `Task::wait` and the pool worker alone, without Lua (issue 15).
//!
//!   cargo run --release -p weft-core --example pinned_round_trip -- 0 1   # two CPUs
//!   cargo run --release -p weft-core --example pinned_round_trip -- 0 0   # one CPU
//!
//! Prints the median round trip (submit + wait) of each of 7 repetitions of 20,000.

use std::sync::Arc;
use std::time::Instant;
use weft_core::deadline::Deadline;
use weft_core::message::{Message, Value};
use weft_core::pool::{wait_task, Pool, WorkerLifecycle};
use weft_core::task::{Outcome, Task};

/// Pin the calling thread to `cpu`, or exit with a message.
fn pin(cpu: usize) {
    // SAFETY: an all-zero cpu_set_t is a valid empty set, CPU_SET writes inside it, and
    // sched_setaffinity(0, ..) reads the set and changes only the calling thread.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if !ok {
        eprintln!("pinned_round_trip: cannot pin a thread to CPU {cpu}");
        std::process::exit(2);
    }
}

struct PinTo(usize);
impl WorkerLifecycle for PinTo {
    fn start(&self, _: usize) -> Result<(), String> {
        pin(self.0);
        Ok(())
    }
    fn stop(&self, _: usize) {}
}

fn cpu_arg(n: usize) -> usize {
    match std::env::args().nth(n).map(|a| a.parse()) {
        Some(Ok(c)) => c,
        _ => {
            eprintln!("usage: pinned_round_trip JOINER_CPU WORKER_CPU");
            std::process::exit(2);
        }
    }
}

fn main() {
    let (joiner, worker) = (cpu_arg(1), cpu_arg(2));
    pin(joiner);
    let pool = Pool::new(1, "rt", Arc::new(PinTo(worker))).expect("a pool");
    let mut medians = Vec::new();
    for _ in 0..7 {
        let mut xs = Vec::with_capacity(20_000);
        for i in 0..20_000 {
            let task = Task::new(false);
            let t2 = task.clone();
            let t0 = Instant::now();
            let job = Box::new(move || {
                if t2.start() {
                    t2.finish(Outcome::Returned(Message::single(Value::Int(i))));
                }
            });
            pool.submit(job).expect("an open pool");
            wait_task(&task, Deadline::Never, None);
            xs.push(t0.elapsed().as_secs_f64() * 1e6);
        }
        xs.sort_by(f64::total_cmp);
        medians.push(format!("{:.2}", xs[xs.len() / 2]));
    }
    println!(
        "joiner on CPU {joiner}, worker on CPU {worker}: median round trip per repetition (µs): {}",
        medians.join(" ")
    );
    pool.close_and_join().expect("not inside the pool");
}
