//! A few words that a reload replaces together and calls read together, without a lock: a
//! sequence lock over atomic words (readers write nothing; a reader that overlaps a write
//! reads again).

use std::sync::atomic::{fence, AtomicU64, Ordering};

/// `N` words read and written as one.
pub(crate) struct SeqWords<const N: usize> {
    /// Even while the words are stable; odd while a writer is changing them.
    seq: AtomicU64,
    words: [AtomicU64; N],
}

impl<const N: usize> SeqWords<N> {
    pub(crate) fn new(words: [u64; N]) -> Self {
        SeqWords {
            seq: AtomicU64::new(0),
            words: words.map(AtomicU64::new),
        }
    }

    /// The words, all from the same write.
    #[inline]
    pub(crate) fn read(&self) -> [u64; N] {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 0 {
                let words = std::array::from_fn(|i| self.words[i].load(Ordering::Relaxed));
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == before {
                    return words;
                }
            }
            std::hint::spin_loop();
        }
    }

    /// One word, alone (for a reader that needs no other).
    #[inline]
    pub(crate) fn word(&self, i: usize) -> u64 {
        self.words[i].load(Ordering::Relaxed)
    }

    /// Replaces the words (writers take turns; reloads are rare).
    pub(crate) fn write(&self, words: [u64; N]) {
        let seq = loop {
            let seq = self.seq.load(Ordering::Relaxed);
            if seq & 1 == 0
                && self
                    .seq
                    .compare_exchange_weak(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                break seq;
            }
            std::hint::spin_loop();
        };
        fence(Ordering::Release);
        for (word, value) in self.words.iter().zip(words) {
            word.store(value, Ordering::Relaxed);
        }
        self.seq.store(seq + 2, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_never_see_half_a_write() {
        let words = SeqWords::new([0u64; 4]);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 1..=20_000u64 {
                    words.write([i; 4]);
                }
            });
            s.spawn(|| {
                for _ in 0..20_000 {
                    let w = words.read();
                    assert!(w.iter().all(|x| *x == w[0]), "torn read {w:?}");
                }
            });
        });
        assert_eq!(words.read(), [20_000; 4]);
    }
}
