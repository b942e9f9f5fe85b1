//! loom models of the channel's wake-ups (`make loom`; the argument is in README.md).
//!
//! Each model starts threads that end up asleep in the channel and one action that must
//! wake them: a push, a pop, a close or a cancel. loom runs every interleaving with up to
//! `LOOM_MAX_PREEMPTIONS` preemptions (2 unless set; `make loom LOOM_MAX_PREEMPTIONS=3`
//! looks deeper, in about four minutes on two cores) and every value a relaxed or acquire
//! load may legally read. A lost wake-up leaves a thread asleep for ever, which loom
//! reports as a deadlock. The queues are the weak stand-ins of `sync.rs`, so only the
//! channel's own fences and locks can make these pass.

use super::*;
use crate::message::Value;
use loom::thread;

/// Run `f` under every interleaving loom explores, by default with at most two
/// preemptions (half a minute on two cores; `LOOM_MAX_PREEMPTIONS` overrides).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(f);
}

fn item(i: i64) -> Message {
    Message::single(Value::Int(i))
}

fn int(m: &Message) -> i64 {
    match m.values[0] {
        Value::Int(i) => i,
        ref v => panic!("not an int: {v:?}"),
    }
}

#[test]
fn loom_push_wakes_a_sleeping_pop() {
    model(|| {
        let ch = Channel::new(None);
        let c2 = ch.clone();
        let consumer = thread::spawn(move || c2.pop(Deadline::Never, None).map(|m| int(&m)));
        ch.push(item(7), Deadline::Never, None).unwrap();
        assert_eq!(consumer.join().unwrap(), Ok(7));
    });
}

#[test]
fn loom_pop_wakes_a_sleeping_push() {
    model(|| {
        let ch = Channel::new(Some(1));
        ch.push(item(1), Deadline::Never, None).unwrap();
        let c2 = ch.clone();
        let producer = thread::spawn(move || c2.push(item(2), Deadline::Never, None));
        assert_eq!(int(&ch.pop(Deadline::Never, None).unwrap()), 1);
        assert_eq!(producer.join().unwrap(), Ok(()));
        assert_eq!(ch.try_pop().map(|m| int(&m)), Some(2));
    });
}

#[test]
fn loom_two_pushes_wake_two_sleeping_pops() {
    model(|| {
        let ch = Channel::new(None);
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let c = ch.clone();
                thread::spawn(move || int(&c.pop(Deadline::Never, None).unwrap()))
            })
            .collect();
        ch.push(item(1), Deadline::Never, None).unwrap();
        ch.push(item(2), Deadline::Never, None).unwrap();
        let mut got: Vec<i64> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
    });
}

#[test]
fn loom_one_slot_hand_over_both_ways() {
    // Capacity one, two items: the producer sleeps on a full queue and the consumer on an
    // empty one, each woken by the other.
    model(|| {
        let ch = Channel::new(Some(1));
        let c2 = ch.clone();
        let producer = thread::spawn(move || {
            for i in 1..=2 {
                c2.push(item(i), Deadline::Never, None).unwrap();
            }
        });
        let first = int(&ch.pop(Deadline::Never, None).unwrap());
        let second = int(&ch.pop(Deadline::Never, None).unwrap());
        producer.join().unwrap();
        assert_eq!((first, second), (1, 2));
    });
}

#[test]
fn loom_close_wakes_sleeping_pop_and_push() {
    model(|| {
        let empty = Channel::new(None);
        let full = Channel::new(Some(1));
        full.push(item(1), Deadline::Never, None).unwrap();
        let (e2, f2) = (empty.clone(), full.clone());
        let consumer = thread::spawn(move || e2.pop(Deadline::Never, None).map(|m| int(&m)));
        let producer = thread::spawn(move || f2.push(item(2), Deadline::Never, None));
        empty.close();
        full.close();
        assert_eq!(consumer.join().unwrap(), Err(PopError::Closed));
        assert_eq!(producer.join().unwrap(), Err(PushError::Closed));
        assert_eq!(full.len(), 1);
    });
}

#[test]
fn loom_cancel_wakes_sleeping_pop_and_push() {
    model(|| {
        let empty = Channel::new(None);
        let full = Channel::new(Some(1));
        full.push(item(1), Deadline::Never, None).unwrap();
        let (t1, t2) = (CancelToken::new(), CancelToken::new());
        let (e2, f2, tc1, tc2) = (empty.clone(), full.clone(), t1.clone(), t2.clone());
        let consumer = thread::spawn(move || e2.pop(Deadline::Never, Some(&tc1)).map(|m| int(&m)));
        let producer = thread::spawn(move || f2.push(item(2), Deadline::Never, Some(&tc2)));
        t1.cancel();
        t2.cancel();
        assert_eq!(consumer.join().unwrap(), Err(PopError::Cancelled));
        assert_eq!(producer.join().unwrap(), Err(PushError::Cancelled));
        assert_eq!(full.len(), 1);
    });
}

#[test]
fn loom_a_push_racing_close_is_delivered_or_refused() {
    model(|| {
        let ch = Channel::new(None);
        let (tx, rx) = (ch.clone(), ch.clone());
        let producer = thread::spawn(move || tx.push(item(7), Deadline::Never, None));
        let consumer = thread::spawn(move || {
            let mut got = 0;
            while rx.pop(Deadline::Never, None).is_ok() {
                got += 1;
            }
            got
        });
        ch.close();
        let pushed = producer.join().unwrap();
        let got = consumer.join().unwrap();
        // An accepted push reaches the consumer that drains until Closed; a refused one does not.
        assert_eq!(
            got,
            usize::from(pushed.is_ok()),
            "push {pushed:?}, consumer got {got}"
        );
    });
}
