//! A Miri-sized channel workload (`make miri` runs it; the unit test with 20 000 messages is
//! too slow there): producers and consumers on a channel of capacity 2, so both sides block
//! and are woken many times. Nothing may be lost, duplicated or reordered per producer.

mod channel {
    use std::collections::HashMap;
    use weft_core::message::{Message, Value};
    use weft_core::{Channel, Deadline};

    #[test]
    fn small_blocking_workload_loses_nothing_and_keeps_producer_order() {
        let (producers, each) = (3i64, 40i64);
        let ch = Channel::new(Some(2));
        let senders: Vec<_> = (0..producers)
            .map(|p| {
                let ch = ch.clone();
                std::thread::spawn(move || {
                    for i in 0..each {
                        let m = Message::single(Value::Int(p * 1_000 + i));
                        ch.push(m, Deadline::Never, None).unwrap();
                    }
                })
            })
            .collect();
        let receivers: Vec<_> = (0..2)
            .map(|_| {
                let ch = ch.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Ok(m) = ch.pop(Deadline::Never, None) {
                        match m.values[0] {
                            Value::Int(v) => got.push(v),
                            ref v => panic!("not an int: {v:?}"),
                        }
                    }
                    got
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        ch.close();
        let mut seen: HashMap<i64, Vec<i64>> = HashMap::new();
        let mut all = Vec::new();
        for r in receivers {
            let got = r.join().unwrap();
            // One consumer sees each producer's messages in the order they were pushed.
            let mut last: HashMap<i64, i64> = HashMap::new();
            for &v in &got {
                let (p, i) = (v / 1_000, v % 1_000);
                if let Some(&before) = last.get(&p) {
                    assert!(i > before, "producer {p}: {i} popped after {before}");
                }
                last.insert(p, i);
                seen.entry(p).or_default().push(i);
            }
            all.extend(got);
        }
        all.sort_unstable();
        let want: Vec<i64> = (0..producers)
            .flat_map(|p| (0..each).map(move |i| p * 1_000 + i))
            .collect();
        assert_eq!(all, want);
        assert_eq!(seen.len(), producers as usize);
    }
}
