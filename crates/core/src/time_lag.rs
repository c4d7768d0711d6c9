//! Consumer lag in time: how long ago the first message a consumer has not consumed was
//! appended. Operators think in time behind, and a threshold in messages means nothing at
//! 1.7M events/s (100,000 messages are 0.06 s of traffic).
//!
//! Kafka keeps no append time per offset that a poller can ask cheaply, so the time is read
//! off the looks already kept for Burrow's rules (kafka-lag-exporter's method): each look
//! saw the partition's high watermark at a moment; the message at the committed offset `c`
//! was appended when the high watermark first went past `c`. Between two looks that
//! bracket it, the moment is interpolated (messages assumed evenly spread between the two
//! looks); before the first look of the window, it is extrapolated at the window's append
//! rate: an estimate, and a lower bound (the first look's moment) when nothing was appended
//! in the window. Costs nothing beyond the look: no message is read.

use chrono::{DateTime, TimeDelta, Utc};

use crate::lag::Observation;

/// How far behind in time a consumer at offset `committed` is at `now`, from the partition's
/// looks (oldest first); zero when it has consumed everything the last look saw.
pub fn time_lag(window: &[Observation], committed: i64, now: DateTime<Utc>) -> TimeDelta {
    let (Some(first), Some(last)) = (window.first(), window.last()) else {
        return TimeDelta::zero();
    };
    if committed >= last.high_watermark {
        return TimeDelta::zero();
    }
    let appended_at = match window.iter().position(|o| o.high_watermark > committed) {
        // Bracketed by two looks: the message is the (committed − before + 1)-th of those
        // appended between them.
        Some(i) if i > 0 => {
            let (before, after) = (&window[i - 1], &window[i]);
            let appended = after.high_watermark - before.high_watermark;
            let nth = committed - before.high_watermark + 1;
            before.at + scale(after.at - before.at, nth, appended)
        }
        // Appended before the window began: back from the first look at the window's rate.
        _ => {
            let appended = last.high_watermark - first.high_watermark;
            let earlier = first.high_watermark - committed;
            if appended > 0 {
                first.at - scale(last.at - first.at, earlier, appended)
            } else {
                first.at
            }
        }
    };
    (now - appended_at).max(TimeDelta::zero())
}

/// `span` × `part` / `whole`, in milliseconds (whole > 0; saturating).
fn scale(span: TimeDelta, part: i64, whole: i64) -> TimeDelta {
    if whole <= 0 {
        return span;
    }
    let ms = i128::from(span.num_milliseconds()) * i128::from(part) / i128::from(whole);
    TimeDelta::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_756_720_800, 0).unwrap_or_default()
    }

    /// Looks from (seconds after 10:00, high watermark); the committed offset is not used.
    fn looks(points: &[(i64, i64)]) -> Vec<Observation> {
        points
            .iter()
            .map(|&(s, high_watermark)| Observation {
                at: start() + TimeDelta::seconds(s),
                committed: 0,
                high_watermark,
            })
            .collect()
    }

    fn secs(s: i64) -> TimeDelta {
        TimeDelta::seconds(s)
    }

    #[test]
    fn caught_up_is_zero_behind() {
        let w = looks(&[(0, 100), (10, 200)]);
        assert_eq!(time_lag(&w, 200, start() + secs(60)), TimeDelta::zero());
        assert_eq!(time_lag(&[], 5, start()), TimeDelta::zero());
    }

    #[test]
    fn a_bracketed_offset_is_interpolated_between_two_looks() {
        // 100 messages appended between 10:00:10 and 10:00:20; offset 149 is the 50th.
        let w = looks(&[(0, 0), (10, 100), (20, 200), (30, 300)]);
        assert_eq!(time_lag(&w, 149, start() + secs(30)), secs(15));
        // The first message after a look was appended just after it.
        assert_eq!(
            time_lag(&w, 100, start() + secs(30)),
            secs(20) - TimeDelta::milliseconds(100)
        );
    }

    #[test]
    fn before_the_window_it_is_extrapolated_at_the_windows_rate() {
        // 10 messages a second over the window; offset 400 is 100 messages before the
        // first look (10:01:40, high watermark 500): about 10 s earlier.
        let w = looks(&[(100, 500), (110, 600), (120, 700)]);
        assert_eq!(time_lag(&w, 400, start() + secs(120)), secs(30));
        // Nothing appended in the window: at least since the first look.
        let still = looks(&[(100, 500), (110, 500)]);
        assert_eq!(time_lag(&still, 400, start() + secs(120)), secs(20));
    }

    proptest! {
        /// Behind more messages is never less behind in time, and never behind more than
        /// the whole window plus what the rate says of the rest.
        #[test]
        fn more_messages_behind_is_never_less_time_behind(
            steps in proptest::collection::vec((1i64..60, 0i64..10_000), 1..10),
            a in 0i64..100_000,
            b in 0i64..100_000,
        ) {
            let mut points = Vec::new();
            let (mut t, mut high) = (0, 50_000);
            for (dt, appended) in steps {
                t += dt;
                high += appended;
                points.push((t, high));
            }
            let w = looks(&points);
            let now = start() + secs(t + 5);
            let (lo, hi) = (a.min(b), a.max(b));
            prop_assert!(time_lag(&w, lo, now) >= time_lag(&w, hi, now));
            prop_assert!(time_lag(&w, hi, now) >= TimeDelta::zero());
        }
    }
}
