//! The read side's rule for one approval transaction: its history holds each of its events once
//! (by the transaction's own sequence number), and its final state is the fold of that history
//! in sequence order — whatever order the events arrive in and however often one is redelivered.
//! An event older than one already seen is kept in its place in the history, never applied over
//! what came after it.

use std::collections::BTreeMap;

/// One step of a transaction, as its event reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Received {
        amount: i64,
    },
    Routed {
        upstream: String,
    },
    Approved {
        approval_no: String,
    },
    Declined {
        response_code: String,
    },
    TimedOut,
    /// Refused without an upstream's answer (no usable upstream, no original sale...).
    Failed {
        response_code: String,
    },
    CancelQueued,
    CancelSent,
    CancelAcknowledged,
    CancelFailed,
    LateAnswer {
        response_code: String,
    },
}

/// Where the request itself ended (or stands).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestStatus {
    Received,
    Sent,
    Approved,
    Declined,
    TimedOut,
    Failed,
}

/// Where its network cancel stands, if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelStatus {
    None,
    Queued,
    /// Sent this many times, not acknowledged yet.
    Sent(u32),
    Acknowledged,
    Failed,
}

/// A transaction's state, folded from its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalState {
    pub status: RequestStatus,
    pub amount: Option<i64>,
    /// The last upstream it was routed to.
    pub upstream: Option<String>,
    pub response_code: Option<String>,
    pub approval_no: Option<String>,
    pub cancel: CancelStatus,
    pub late_response_code: Option<String>,
    /// The highest sequence number seen.
    pub last_seq: u32,
    /// Whether a sequence number below `last_seq` is still missing (an event on its way).
    pub gaps: bool,
}

/// What recording an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A step not seen before (its place may be before others already seen).
    New,
    /// The same step again (a redelivery): nothing changes.
    Redelivered,
    /// Another step under a sequence number already taken: the first is kept.
    Conflicting,
}

/// A transaction's history: each sequence number's step, once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApprovalHistory {
    steps: BTreeMap<u32, Step>,
}

impl ApprovalHistory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records step `seq` (sequence numbers start at 1).
    pub fn record(&mut self, seq: u32, step: Step) -> Recorded {
        assert!(seq >= 1, "sequence numbers start at 1");
        match self.steps.get(&seq) {
            None => {
                self.steps.insert(seq, step);
                Recorded::New
            }
            Some(seen) if *seen == step => Recorded::Redelivered,
            Some(_) => Recorded::Conflicting,
        }
    }

    /// The steps in sequence order.
    pub fn steps(&self) -> impl Iterator<Item = (u32, &Step)> {
        self.steps.iter().map(|(seq, step)| (*seq, step))
    }

    /// The state the steps fold to, in sequence order; `None` before any.
    pub fn state(&self) -> Option<ApprovalState> {
        let last_seq = *self.steps.keys().next_back()?;
        let mut state = ApprovalState {
            status: RequestStatus::Received,
            amount: None,
            upstream: None,
            response_code: None,
            approval_no: None,
            cancel: CancelStatus::None,
            late_response_code: None,
            last_seq,
            gaps: self.steps.len() < last_seq as usize,
        };
        for step in self.steps.values() {
            state.apply(step);
        }
        Some(state)
    }
}

impl ApprovalState {
    fn apply(&mut self, step: &Step) {
        match step {
            Step::Received { amount } => self.amount = Some(*amount),
            Step::Routed { upstream } => {
                self.upstream = Some(upstream.clone());
                self.status = RequestStatus::Sent;
            }
            Step::Approved { approval_no } => {
                self.status = RequestStatus::Approved;
                self.response_code = Some("00".into());
                self.approval_no = Some(approval_no.clone());
            }
            Step::Declined { response_code } => {
                self.status = RequestStatus::Declined;
                self.response_code = Some(response_code.clone());
            }
            Step::TimedOut => self.status = RequestStatus::TimedOut,
            Step::Failed { response_code } => {
                self.status = RequestStatus::Failed;
                self.response_code = Some(response_code.clone());
            }
            Step::CancelQueued => self.cancel = CancelStatus::Queued,
            Step::CancelSent => {
                let sends = match self.cancel {
                    CancelStatus::Sent(n) => n + 1,
                    _ => 1,
                };
                self.cancel = CancelStatus::Sent(sends);
            }
            Step::CancelAcknowledged => self.cancel = CancelStatus::Acknowledged,
            Step::CancelFailed => self.cancel = CancelStatus::Failed,
            Step::LateAnswer { response_code } => self.late_response_code = Some(response_code.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A transaction's steps as the gateway writes them, in order (seq = index + 1).
    fn transaction() -> impl Strategy<Value = Vec<Step>> {
        let routed = prop::collection::vec("van[ab]", 1..3);
        let ending = prop_oneof![
            "[0-9]{8}".prop_map(|n| vec![Step::Approved { approval_no: n }]),
            "0[1-9]".prop_map(|c| vec![Step::Declined { response_code: c }]),
            (1u32..=5, any::<bool>(), prop::option::of("00|05")).prop_map(|(sends, acknowledged, late)| {
                let mut steps = vec![Step::TimedOut, Step::CancelQueued];
                steps.extend((0..sends).map(|_| Step::CancelSent));
                steps.push(if acknowledged {
                    Step::CancelAcknowledged
                } else {
                    Step::CancelFailed
                });
                steps.extend(late.map(|c| Step::LateAnswer { response_code: c }));
                steps
            }),
        ];
        (1i64..10_000_000, routed, ending).prop_map(|(amount, routed, ending)| {
            let mut steps = vec![Step::Received { amount }];
            steps.extend(routed.into_iter().map(|upstream| Step::Routed { upstream }));
            steps.extend(ending);
            steps
        })
    }

    fn in_order(steps: &[Step]) -> ApprovalHistory {
        let mut h = ApprovalHistory::new();
        for (i, step) in steps.iter().enumerate() {
            assert_eq!(h.record(i as u32 + 1, step.clone()), Recorded::New);
        }
        h
    }

    proptest! {
        /// Any arrival order, with any redeliveries, ends in the history and state of the
        /// events in order, once.
        #[test]
        fn any_order_with_redeliveries_folds_to_the_in_order_state(
            (steps, deliveries) in transaction().prop_flat_map(|steps| {
                let n = steps.len();
                // Every event at least once, some again, in any order.
                let extra = prop::collection::vec(0..n, 0..n * 2);
                (Just(steps), extra.prop_map(move |extra| (0..n).chain(extra).collect::<Vec<_>>()).prop_shuffle())
            })
        ) {
            let expected = in_order(&steps);
            let mut h = ApprovalHistory::new();
            let mut seen = std::collections::HashSet::new();
            for i in deliveries {
                let recorded = h.record(i as u32 + 1, steps[i].clone());
                let first = seen.insert(i);
                prop_assert_eq!(recorded, if first { Recorded::New } else { Recorded::Redelivered });
            }
            prop_assert_eq!(&h, &expected);
            prop_assert_eq!(h.state(), expected.state());
            prop_assert!(!h.state().unwrap().gaps);
        }

        /// Before the last event arrives, the state says a step is missing — unless the
        /// missing one is the last.
        #[test]
        fn a_missing_event_shows_as_a_gap(steps in transaction(), missing in any::<prop::sample::Index>()) {
            let missing = missing.index(steps.len());
            let mut h = ApprovalHistory::new();
            for (i, step) in steps.iter().enumerate().filter(|(i, _)| *i != missing) {
                h.record(i as u32 + 1, step.clone());
            }
            let last = missing == steps.len() - 1;
            match h.state() {
                None => prop_assert_eq!(steps.len(), 1),
                Some(state) => prop_assert_eq!(state.gaps, !last),
            }
        }
    }

    #[test]
    fn an_older_event_is_folded_in_its_place_not_over_later_ones() {
        let mut h = ApprovalHistory::new();
        h.record(
            3,
            Step::Approved {
                approval_no: "12345678".into(),
            },
        );
        let approved = h.state().unwrap();
        assert_eq!(approved.status, RequestStatus::Approved);
        assert!(approved.gaps);
        // The routing, arriving late, does not take the transaction back to `sent`.
        assert_eq!(
            h.record(
                2,
                Step::Routed {
                    upstream: "vana".into()
                }
            ),
            Recorded::New
        );
        let state = h.state().unwrap();
        assert_eq!(state.status, RequestStatus::Approved);
        assert_eq!(state.upstream.as_deref(), Some("vana"));
        assert_eq!(state.approval_no.as_deref(), Some("12345678"));
        assert_eq!(state.last_seq, 3);
    }

    #[test]
    fn a_different_step_under_a_taken_number_is_refused_and_the_first_kept() {
        let mut h = ApprovalHistory::new();
        h.record(1, Step::Received { amount: 1_000 });
        assert_eq!(h.record(1, Step::Received { amount: 2_000 }), Recorded::Conflicting);
        assert_eq!(h.state().unwrap().amount, Some(1_000));
    }

    #[test]
    fn cancel_sends_are_counted_until_the_end() {
        let mut h = ApprovalHistory::new();
        for (seq, step) in [
            Step::Received { amount: 5 },
            Step::TimedOut,
            Step::CancelQueued,
            Step::CancelSent,
            Step::CancelSent,
        ]
        .into_iter()
        .enumerate()
        {
            h.record(seq as u32 + 1, step);
        }
        assert_eq!(h.state().unwrap().cancel, CancelStatus::Sent(2));
        h.record(6, Step::CancelFailed);
        assert_eq!(h.state().unwrap().cancel, CancelStatus::Failed);
    }
}
