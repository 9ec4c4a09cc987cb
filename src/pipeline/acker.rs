//! Acknowledgements in order.
//!
//! Batches are numbered as they are cut and may be committed out of order
//! when several are written in parallel. The checkpoint may only move past a
//! batch once every batch before it is committed too, otherwise a crash could
//! skip the lines of a batch that never made it. The acker holds finished
//! batches until the gap before them closes, then releases them in order.

use std::collections::BTreeMap;

/// Releases finished items in sequence order.
#[derive(Debug)]
pub struct Acker<T> {
    next: u64,
    waiting: BTreeMap<u64, T>,
}

impl<T> Default for Acker<T> {
    fn default() -> Self {
        Acker {
            next: 0,
            waiting: BTreeMap::new(),
        }
    }
}

impl<T> Acker<T> {
    /// An acker expecting sequence number 0 first.
    pub fn new() -> Acker<T> {
        Acker::default()
    }

    /// Marks `seq` finished and returns every item that can now be released,
    /// in order: the contiguous run starting at the oldest unreleased number.
    pub fn finish(&mut self, seq: u64, item: T) -> Vec<T> {
        self.waiting.insert(seq, item);
        let mut released = Vec::new();
        while let Some(item) = self.waiting.remove(&self.next) {
            released.push(item);
            self.next += 1;
        }
        released
    }

    /// Items finished but held back by an unfinished earlier one.
    pub fn held(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_items_pass_straight_through() {
        let mut acker = Acker::new();
        assert_eq!(acker.finish(0, 'a'), vec!['a']);
        assert_eq!(acker.finish(1, 'b'), vec!['b']);
    }

    #[test]
    fn a_later_item_waits_for_the_gap_to_close() {
        let mut acker = Acker::new();
        assert!(acker.finish(1, 'b').is_empty());
        assert!(acker.finish(2, 'c').is_empty());
        assert_eq!(acker.held(), 2);
        assert_eq!(acker.finish(0, 'a'), vec!['a', 'b', 'c']);
        assert_eq!(acker.held(), 0);
    }
}
