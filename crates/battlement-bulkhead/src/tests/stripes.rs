//! The per-thread permit stripes: a call takes and returns its permit in its thread's stripe,
//! and permits cached by one thread still serve another.

use super::*;
use crate::bulkhead::Admission;

fn admitted(a: &BulkheadAdmission) -> bool {
    matches!(a.0, Admission::Now(_))
}

/// Once this thread's stripe holds permits, a call neither takes its permit from the shared
/// word nor gives it back there: the word, which calls on every core read, is not written.
/// (With one permit word, the design before the stripes, the call decremented it.)
#[test]
fn a_call_takes_and_returns_its_permit_in_its_thread_stripe() {
    let b = Bulkhead::builder("stripes")
        .max_concurrent(64)
        .build()
        .unwrap();
    drop(b.try_call()); // stocks this thread's stripe from the shared pool
    let word = b.shared().word.load(SeqCst);
    let call = b.try_call();
    assert!(admitted(&call));
    assert_eq!(b.in_flight(), 1);
    assert_eq!(
        b.shared().word.load(SeqCst),
        word,
        "taking wrote the shared word"
    );
    drop(call);
    assert_eq!(
        b.shared().word.load(SeqCst),
        word,
        "returning wrote the shared word"
    );
    assert_eq!((b.in_flight(), b.free_permits()), (0, 64));
}

/// A thread that took every permit leaves them cached in its stripe when its calls finish;
/// another thread then takes them all (from the shared pool or by stealing), and not one more.
#[test]
fn permits_cached_by_one_thread_serve_another() {
    let b = Bulkhead::builder("stripes")
        .max_concurrent(4)
        .build()
        .unwrap();
    let held: Vec<_> = (0..4).map(|_| b.try_call()).collect();
    assert!(held.iter().all(admitted));
    assert!(!admitted(&b.try_call()), "a fifth permit");
    drop(held);
    let other = b.clone();
    std::thread::spawn(move || {
        let held: Vec<_> = (0..4).map(|_| other.try_call()).collect();
        assert!(
            held.iter().all(admitted),
            "permits stranded in another stripe"
        );
        assert!(!admitted(&other.try_call()), "a fifth permit");
    })
    .join()
    .unwrap();
    assert_eq!((b.in_flight(), b.free_permits()), (0, 4));
}
