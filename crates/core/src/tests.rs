//! Property tests of the scheduling rules: random DAGs, random outcomes, shared limits.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;

use super::admission::Admission;
use super::intervals::{RangeError, backfill_range, due_intervals};
use super::plan::{DagPlan, TaskPlan};
use super::retry::retry_delay;
use super::run::{Outcome, RunState};
use super::state::{RunKind, RunStatus, TaskState};
use super::trigger::{self, Past, Upstream, Verdict};
use sluice_model::schedule::DataInterval;
use sluice_model::spec::{Duration, EffectivePolicy, RetryBackoff, TriggerRule};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 9, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

#[derive(Debug, Clone)]
struct TaskSpec {
    upstream: Vec<usize>,
    rule: TriggerRule,
    retries: u32,
    pool: bool,
}

fn rule() -> impl Strategy<Value = TriggerRule> {
    prop::sample::select(TriggerRule::ALL.iter().map(|(_, r)| *r).collect::<Vec<_>>())
}

fn dag_spec() -> impl Strategy<Value = Vec<TaskSpec>> {
    (1usize..8).prop_flat_map(|n| {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                (
                    prop::collection::vec(0..i.max(1), 0..=i.min(3)),
                    rule(),
                    0u32..3,
                    any::<bool>(),
                )
                    .prop_map(move |(ups, rule, retries, pool)| TaskSpec {
                        upstream: if i == 0 {
                            Vec::new()
                        } else {
                            ups.into_iter()
                                .collect::<BTreeSet<_>>()
                                .into_iter()
                                .collect()
                        },
                        rule,
                        retries,
                        pool,
                    })
            })
            .collect();
        tasks
    })
}

/// An unscheduled DAG `sim` with no tasks yet.
fn sim_dag(max_active_tasks: u32) -> sluice_model::spec::Dag {
    sluice_model::spec::Dag {
        dag: "sim".into(),
        description: None,
        owner: None,
        tags: Vec::new(),
        schedule: None,
        timezone: Default::default(),
        start: None,
        end: None,
        catchup: false,
        paused_on_creation: false,
        max_active_runs: 16,
        max_active_tasks,
        sla: None,
        consumes: Default::default(),
        gate: None,
        defaults: Default::default(),
        params: Default::default(),
        param_specs: Default::default(),
        allow_undeclared_conf: false,
        tasks: Default::default(),
    }
}

fn plan(specs: &[TaskSpec], max_active_tasks: usize, sla: Option<i64>) -> DagPlan {
    let mut tasks: Vec<TaskPlan> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| TaskPlan {
            id: format!("t{i}"),
            upstream: s.upstream.clone(),
            downstream: Vec::new(),
            trigger_rule: s.rule,
            depends_on_past: false,
            policy: EffectivePolicy {
                retries: s.retries,
                retry_delay: Duration::from_secs(60),
                retry_backoff: RetryBackoff::Exponential,
                max_retry_delay: Duration::from_secs(600),
                timeout: None,
                pool: if s.pool {
                    "small".into()
                } else {
                    "default".into()
                },
            },
        })
        .collect();
    for i in 0..tasks.len() {
        for u in tasks[i].upstream.clone() {
            tasks[u].downstream.push(i);
        }
    }
    let mut dag = sim_dag(max_active_tasks as u32);
    for (i, s) in specs.iter().enumerate() {
        dag.tasks.insert(
            format!("t{i}"),
            sluice_model::spec::Task {
                kind: sluice_model::spec::TaskKind::Noop(sluice_model::spec::NoopTask {}),
                settings: sluice_model::spec::TaskSettings {
                    depends_on: s.upstream.iter().map(|u| format!("t{u}")).collect(),
                    trigger_rule: s.rule,
                    ..Default::default()
                },
            },
        );
    }
    let mut compiled = DagPlan::new(&dag);
    compiled.tasks = tasks;
    compiled.sla_deadline = sla.map(TimeDelta::minutes);
    compiled
}

/// Outcome of the n-th attempt overall: 0 success, 1 retryable failure, 2 fatal failure.
fn outcome(code: u8) -> Outcome {
    match code % 3 {
        0 => Outcome::Success,
        1 => Outcome::Failed {
            retryable: true,
            reason: "flaky".into(),
        },
        _ => Outcome::Failed {
            retryable: false,
            reason: "broken".into(),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Random DAGs and outcomes through the state machine and shared limits: no task starts
    /// before its trigger rule allows it, limits are never exceeded, and every run finishes.
    #[test]
    fn simulated_runs_respect_rules_and_limits_and_always_finish(
        specs in dag_spec(),
        runs in 1usize..5,
        max_active_tasks in 1usize..4,
        small_pool in 1usize..3,
        outcomes in prop::collection::vec(0u8..6, 64),
        order in prop::collection::vec(any::<prop::sample::Index>(), 64),
        sla in prop::option::of(5i64..200),
    ) {
        let plan = plan(&specs, max_active_tasks, sla);
        let mut admission = Admission::new(HashMap::from([("small".to_owned(), small_pool)]));
        let mut states: Vec<RunState> = (0..runs)
            .map(|r| {
                let start = t0() + TimeDelta::minutes(15 * r as i64);
                RunState::new(&plan, RunKind::Backfill, DataInterval { start, end: start + TimeDelta::minutes(15) })
            })
            .collect();
        let mut now = t0() + TimeDelta::hours(1);
        let mut running: Vec<(usize, usize, u32)> = Vec::new();
        let mut step = 0usize;
        for _ in 0..10_000 {
            for run in &mut states {
                run.evaluate(&plan, &|_| Past::Satisfied, true, now);
            }
            // Grant slots, upstream first, run by run.
            for (r, run) in states.iter_mut().enumerate() {
                let ready: Vec<usize> = run.scheduled().collect();
                for task in ready {
                    let upstream = Upstream::count(plan.tasks[task].upstream.iter().map(|&u| run.tasks[u].state));
                    prop_assert_eq!(trigger::evaluate(plan.tasks[task].trigger_rule, upstream), Verdict::Run);
                    if admission.try_admit(&plan, task) {
                        run.start(task, now);
                        running.push((r, task, run.tasks[task].try_number));
                    }
                }
            }
            let in_flight: usize = states.iter().flat_map(|r| &r.tasks).filter(|t| t.state.holds_slot()).count();
            prop_assert!(in_flight <= max_active_tasks, "{} running > {}", in_flight, max_active_tasks);
            let small_in_flight = states.iter().flat_map(|r| r.tasks.iter().enumerate())
                .filter(|(i, t)| t.state.holds_slot() && plan.tasks[*i].policy.pool == "small")
                .count();
            prop_assert!(small_in_flight <= small_pool);
            if running.is_empty() {
                match states.iter().filter_map(RunState::next_retry_at).min() {
                    Some(at) => { now = now.max(at); continue; }
                    None => break,
                }
            }
            let pick = order[step % order.len()].index(running.len());
            let (r, task, try_number) = running.swap_remove(pick);
            let result = outcome(outcomes[step % outcomes.len()]);
            step += 1;
            now += TimeDelta::minutes(1);
            states[r].finish(&plan, task, try_number, &result, now);
            admission.release(&plan.dag_id, &plan.tasks[task].policy.pool);
        }
        for run in &states {
            prop_assert!(run.status.is_finished(), "run stuck: {:?}", run);
            prop_assert!(run.tasks.iter().all(|t| t.state.is_finished()));
            for (i, t) in run.tasks.iter().enumerate() {
                prop_assert!(t.try_number <= plan.tasks[i].policy.retries + 1);
            }
        }
    }

    #[test]
    fn retry_delays_never_decrease_and_respect_the_cap(
        delay in 1u64..3_600,
        cap in 1u64..86_400,
        exponential in any::<bool>(),
        key in "[a-z0-9/_]{1,40}",
    ) {
        let policy = EffectivePolicy {
            retries: 20,
            retry_delay: Duration::from_secs(delay),
            retry_backoff: if exponential { RetryBackoff::Exponential } else { RetryBackoff::Constant },
            max_retry_delay: Duration::from_secs(cap),
            timeout: None,
            pool: "default".into(),
        };
        let ceiling = TimeDelta::seconds(cap.max(delay) as i64);
        let delays: Vec<TimeDelta> = (1..=20).map(|t| retry_delay(&policy, t, &format!("{key}/{t}"))).collect();
        for pair in delays.windows(2) {
            prop_assert!(pair[0] <= pair[1], "{:?}", delays);
        }
        prop_assert!(delays.iter().all(|d| *d <= ceiling && *d >= TimeDelta::seconds(delay as i64).min(ceiling)));
        // Deterministic: the same key gives the same delay.
        prop_assert_eq!(retry_delay(&policy, 3, "k"), retry_delay(&policy, 3, "k"));
    }

    /// Asking at random moments, with or without catchup, creates each interval between
    /// `start` and now exactly once (with catchup: all of them).
    #[test]
    fn every_interval_gets_exactly_one_scheduled_run(
        steps in prop::collection::vec(1i64..600, 1..30),
        limit in 1usize..50,
        expression in prop::sample::select(vec!["*/15 * * * *", "0 * * * *", "5 */2 * * *", "30 2 * * *"]),
        zone in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York"]),
    ) {
        let text = format!(
            "dag: d\nschedule: \"{expression}\"\ntimezone: {zone}\nstart: 2025-03-28T00:00:00Z\ncatchup: true\ntasks:\n  a: {{ type: noop }}\n"
        );
        let loaded = sluice_model::spec::load_bytes(std::path::Path::new("d.yaml"), text.into_bytes());
        let dag = match loaded { Ok(l) => l.dag, Err(r) => return Err(TestCaseError::fail(r.render(false))) };
        let mut created: Vec<DataInterval> = Vec::new();
        let mut next_start = None;
        let mut now = t0() - TimeDelta::days(160);
        for minutes in steps {
            now += TimeDelta::minutes(minutes * 7);
            loop {
                let due = due_intervals(&dag, next_start, now, limit);
                if due.is_empty() { break; }
                next_start = due.last().map(|i| i.end);
                created.extend(due);
            }
        }
        let schedule = dag.schedule.as_ref().map(|s| s.to_owned());
        let expected: Vec<DataInterval> = schedule
            .map(|s| s.intervals(dag.timezone.tz(), dag.start.unwrap_or_default()).take_while(|i| i.end <= now).collect())
            .unwrap_or_default();
        prop_assert_eq!(created, expected);
    }

    /// A backfill range counts exactly the whole intervals inside the DAG's life and the
    /// range, and is refused exactly when they are more than the cap.
    #[test]
    fn a_backfill_range_counts_the_intervals_inside_the_dags_life_up_to_the_cap(
        from_hours in -2000i64..2000,
        length_hours in 1i64..3000,
        cap in 1usize..400,
        expression in prop::sample::select(vec!["*/15 * * * *", "0 * * * *", "5 */2 * * *", "30 2 * * *"]),
        zone in prop::sample::select(vec!["UTC", "Europe/Berlin", "America/New_York"]),
    ) {
        let text = format!(
            "dag: d\nschedule: \"{expression}\"\ntimezone: {zone}\nstart: 2025-09-01T00:00:00Z\nend: 2025-10-15T00:00:00Z\ntasks:\n  a: {{ type: noop }}\n"
        );
        let loaded = sluice_model::spec::load_bytes(std::path::Path::new("d.yaml"), text.into_bytes());
        let dag = match loaded { Ok(l) => l.dag, Err(r) => return Err(TestCaseError::fail(r.render(false))) };
        let from = t0() + TimeDelta::hours(from_hours);
        let to = from + TimeDelta::hours(length_hours);
        let (start, end) = (dag.start.unwrap_or_default(), dag.end.unwrap_or_default());
        let expected: Vec<DataInterval> = dag
            .schedule
            .as_ref()
            .map(|s| {
                s.intervals(dag.timezone.tz(), start)
                    .take_while(|i| i.end <= end)
                    .filter(|i| i.start >= from && i.end <= to)
                    .collect()
            })
            .unwrap_or_default();
        match backfill_range(&dag, from, to, cap) {
            Ok(range) => {
                prop_assert!(expected.len() <= cap);
                prop_assert_eq!(range.total, expected.len());
                prop_assert_eq!(range.first, expected.first().cloned());
                prop_assert!(range.from >= start && range.to <= end.max(range.from));
            }
            Err(RangeError::TooMany { cap: refused, .. }) => {
                prop_assert_eq!(refused, cap);
                prop_assert!(expected.len() > cap, "{} intervals refused at cap {}", expected.len(), cap);
            }
            Err(other) => return Err(TestCaseError::fail(other.to_string())),
        }
    }
}

#[test]
fn trigger_rules_follow_airflow() {
    use TaskState::*;
    let v = |rule, states: &[TaskState]| {
        trigger::evaluate(rule, Upstream::count(states.iter().copied()))
    };
    assert_eq!(
        v(TriggerRule::AllSuccess, &[Success, Success]),
        Verdict::Run
    );
    assert_eq!(
        v(TriggerRule::AllSuccess, &[Success, Running]),
        Verdict::Wait
    );
    assert_eq!(
        v(TriggerRule::AllSuccess, &[Failed, Running]),
        Verdict::UpstreamFailed
    );
    assert_eq!(
        v(TriggerRule::AllSuccess, &[Skipped, Success]),
        Verdict::Skip
    );
    assert_eq!(v(TriggerRule::AllDone, &[Failed, Success]), Verdict::Run);
    assert_eq!(
        v(TriggerRule::OneSuccess, &[Success, Running]),
        Verdict::Run
    );
    assert_eq!(
        v(TriggerRule::OneSuccess, &[Failed, Skipped]),
        Verdict::UpstreamFailed
    );
    assert_eq!(
        v(TriggerRule::OneFailed, &[UpstreamFailed, Running]),
        Verdict::Run
    );
    assert_eq!(
        v(TriggerRule::OneFailed, &[Success, Skipped]),
        Verdict::Skip
    );
    assert_eq!(
        v(TriggerRule::NoneFailed, &[Success, Skipped]),
        Verdict::Run
    );
    assert_eq!(
        v(TriggerRule::NoneFailed, &[Success, Failed]),
        Verdict::UpstreamFailed
    );
    assert_eq!(
        v(TriggerRule::AllFailed, &[Failed, UpstreamFailed]),
        Verdict::Run
    );
    assert_eq!(v(TriggerRule::AllFailed, &[Failed, Success]), Verdict::Skip);
    assert_eq!(v(TriggerRule::Always, &[Running]), Verdict::Run);
    assert_eq!(v(TriggerRule::AllSuccess, &[]), Verdict::Run);
}

fn chain(retries: u32, sla_minutes: Option<i64>) -> DagPlan {
    let specs = vec![
        TaskSpec {
            upstream: vec![],
            rule: TriggerRule::AllSuccess,
            retries,
            pool: false,
        },
        TaskSpec {
            upstream: vec![0],
            rule: TriggerRule::AllSuccess,
            retries,
            pool: false,
        },
    ];
    plan(&specs, 8, sla_minutes)
}

fn interval() -> DataInterval {
    DataInterval {
        start: t0(),
        end: t0() + TimeDelta::minutes(15),
    }
}

#[test]
fn a_fatal_error_skips_the_remaining_retries() {
    let plan = chain(3, None);
    let mut run = RunState::new(&plan, RunKind::Scheduled, interval());
    run.evaluate(&plan, &|_| Past::Satisfied, true, t0());
    run.start(0, t0());
    run.finish(
        &plan,
        0,
        1,
        &Outcome::Failed {
            retryable: false,
            reason: "syntax error".into(),
        },
        t0(),
    );
    run.evaluate(&plan, &|_| Past::Satisfied, true, t0());
    assert_eq!(run.tasks[0].state, TaskState::Failed);
    assert!(
        run.tasks[0]
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("fatal"))
    );
    assert_eq!(run.tasks[1].state, TaskState::UpstreamFailed);
    assert_eq!(run.status, RunStatus::Failed);
}

/// The case: `b` failed, its downstream `c` is upstream_failed, `d` runs whatever
/// happened (all_done). Marking `b` success by hand leaves `c` never run: the run is not a
/// success (it was one before this rule, and the ledger called the interval processed).
#[test]
fn a_task_left_upstream_failed_keeps_the_run_from_success() {
    let rule = |upstream: Vec<usize>, rule| TaskSpec {
        upstream,
        rule,
        retries: 0,
        pool: false,
    };
    let plan = plan(
        &[
            rule(vec![], TriggerRule::AllSuccess),
            rule(vec![0], TriggerRule::AllSuccess),
            rule(vec![1], TriggerRule::AllSuccess),
            rule(vec![2], TriggerRule::AllDone),
        ],
        8,
        None,
    );
    let mut run = RunState::new(&plan, RunKind::Scheduled, interval());
    let step = |run: &mut RunState, task: usize, outcome: Outcome| {
        run.evaluate(&plan, &|_| Past::Satisfied, true, t0());
        run.start(task, t0());
        run.finish(&plan, task, 1, &outcome, t0());
        run.evaluate(&plan, &|_| Past::Satisfied, true, t0());
    };
    step(&mut run, 0, Outcome::Success);
    step(
        &mut run,
        1,
        Outcome::Failed {
            retryable: false,
            reason: "boom".into(),
        },
    );
    step(&mut run, 3, Outcome::Success);
    assert_eq!(run.tasks[2].state, TaskState::UpstreamFailed);
    assert_eq!(run.status, RunStatus::Failed);
    run.mark(1, TaskState::Success, "by hand");
    assert_eq!(run.tasks[2].state, TaskState::UpstreamFailed);
    assert_eq!(run.status, RunStatus::Failed, "c never ran");
    // Cleared, c runs and the run succeeds.
    run.clear(&plan, &[2], false);
    step(&mut run, 2, Outcome::Success);
    assert_eq!(run.status, RunStatus::Success);
}

/// A run moved onto a fixed DAG keeps each task's instance by id; a new task starts
/// afresh, a removed one goes.
#[test]
fn a_run_adopts_a_new_plan_by_task_id() {
    let old = chain(0, None);
    let mut run = RunState::new(&old, RunKind::Scheduled, interval());
    run.evaluate(&old, &|_| Past::Satisfied, true, t0());
    run.start(0, t0());
    assert!(!run.adopt_plan(&old, &old, |_| 0), "refused while t0 runs");
    run.finish(&old, 0, 1, &Outcome::Success, t0());
    let spec = |upstream: Vec<usize>| TaskSpec {
        upstream,
        rule: TriggerRule::AllSuccess,
        retries: 0,
        pool: false,
    };
    // A version with a task t2 added: t0 keeps its instance, t2 starts afresh.
    let grown = plan(&[spec(vec![]), spec(vec![0]), spec(vec![1])], 8, None);
    assert!(run.adopt_plan(&old, &grown, |_| 0));
    assert_eq!(run.tasks.len(), 3);
    assert_eq!(
        run.tasks[0].state,
        TaskState::Success,
        "t0 kept its instance"
    );
    assert_eq!(run.tasks[0].try_number, 1);
    assert_eq!(run.tasks[2].state, TaskState::None, "t2 is new");
    // A version with t1 and t2 gone.
    let shrunk = plan(&[spec(vec![])], 8, None);
    assert!(run.adopt_plan(&grown, &shrunk, |_| 0));
    assert_eq!(run.tasks.len(), 1);
    assert_eq!(run.tasks[0].state, TaskState::Success);
}

/// Independent noop tasks with the given ids, in that order.
fn named(ids: &[&str]) -> DagPlan {
    let mut spec = sim_dag(8);
    for id in ids {
        spec.tasks.insert(
            (*id).to_owned(),
            sluice_model::spec::Task {
                kind: sluice_model::spec::TaskKind::Noop(sluice_model::spec::NoopTask {}),
                settings: Default::default(),
            },
        );
    }
    DagPlan::new(&spec)
}

/// Adoption goes by id, not by position: a task put before the others, or the order
/// changed, keeps each instance with its own task; a task removed and added back later
/// continues its try count, so no try number (attempt record, log, idempotency key) is
/// used twice.
#[test]
fn adopting_goes_by_id_and_never_reuses_a_try_number() {
    let first = named(&["load", "extract"]);
    let mut run = RunState::new(&first, RunKind::Scheduled, interval());
    let at = |p: &DagPlan, id: &str| p.task_index(id).unwrap_or(usize::MAX);
    run.evaluate(&first, &|_| Past::Satisfied, true, t0());
    for id in ["load", "extract"] {
        run.start(at(&first, id), t0());
    }
    run.finish(&first, at(&first, "load"), 1, &Outcome::Success, t0());
    let fatal = Outcome::Failed {
        retryable: false,
        reason: "boom".into(),
    };
    run.finish(&first, at(&first, "extract"), 1, &fatal, t0());
    // A task added in front and the order changed.
    let second = named(&["audit", "extract", "load"]);
    assert!(run.adopt_plan(&first, &second, |_| 0));
    assert_eq!(run.tasks[at(&second, "load")].state, TaskState::Success);
    assert_eq!(run.tasks[at(&second, "extract")].state, TaskState::Failed);
    assert_eq!(run.tasks[at(&second, "audit")].state, TaskState::None);
    // `extract` removed, then added back: it continues from its one earlier try.
    let third = named(&["audit", "load"]);
    assert!(run.adopt_plan(&second, &third, |_| 0));
    let fourth = named(&["extract", "audit", "load"]);
    assert!(run.adopt_plan(&third, &fourth, |id| u32::from(id == "extract")));
    let extract = at(&fourth, "extract");
    assert_eq!(run.tasks[extract].state, TaskState::None);
    run.evaluate(&fourth, &|_| Past::Satisfied, true, t0());
    run.start(extract, t0());
    assert_eq!(run.tasks[extract].try_number, 2, "try 1 is taken");
}

#[test]
fn a_retryable_error_waits_then_runs_the_next_try() {
    let plan = chain(1, None);
    let mut run = RunState::new(&plan, RunKind::Scheduled, interval());
    run.evaluate(&plan, &|_| Past::Satisfied, true, t0());
    run.start(0, t0());
    run.finish(
        &plan,
        0,
        1,
        &Outcome::Failed {
            retryable: true,
            reason: "timeout".into(),
        },
        t0(),
    );
    assert_eq!(run.tasks[0].state, TaskState::UpForRetry);
    // Exponential backoff: 1 minute plus up to half of it as jitter.
    let at = run.next_retry_at().unwrap_or_default();
    assert!(
        at >= t0() + TimeDelta::minutes(1) && at < t0() + TimeDelta::seconds(90),
        "{at}"
    );
    run.evaluate(
        &plan,
        &|_| Past::Satisfied,
        true,
        at - TimeDelta::seconds(1),
    );
    assert_eq!(run.tasks[0].state, TaskState::UpForRetry);
    run.evaluate(&plan, &|_| Past::Satisfied, true, at);
    assert_eq!(run.tasks[0].state, TaskState::Scheduled);
    run.start(0, t0());
    assert_eq!(run.tasks[0].try_number, 2);
    // A late report about try 1 changes nothing.
    run.finish(&plan, 0, 1, &Outcome::Success, t0());
    assert_eq!(run.tasks[0].state, TaskState::Running);
    run.finish(
        &plan,
        0,
        2,
        &Outcome::Failed {
            retryable: true,
            reason: "timeout".into(),
        },
        t0(),
    );
    assert_eq!(run.tasks[0].state, TaskState::Failed, "retries used up");
}

/// A run of `kind` over `interval()` (deadline: 10 minutes after its end) whose first task's
/// first try fails retryably `minutes` after `t0()`.
fn first_try_failed_at(kind: RunKind, minutes: i64) -> RunState {
    first_try_failed_in(kind, false, minutes)
}

/// The same, in a run that reprocesses its interval (`reprocessing`) or not.
fn first_try_failed_in(kind: RunKind, reprocessing: bool, minutes: i64) -> RunState {
    let plan = chain(3, Some(10));
    let mut run = RunState::new(&plan, kind, interval());
    run.reprocessing = reprocessing;
    run.evaluate(&plan, &|_| Past::Satisfied, true, t0());
    run.start(0, t0());
    run.finish(
        &plan,
        0,
        1,
        &Outcome::Failed {
            retryable: true,
            reason: "EMR step failed".into(),
        },
        t0() + TimeDelta::minutes(minutes),
    );
    run
}

#[test]
fn a_retry_that_would_start_after_the_sla_deadline_is_not_started() {
    // Interval ends at 00:15, deadline 10 minutes later; the retry would start at 00:26.
    let run = first_try_failed_at(RunKind::Scheduled, 25);
    assert_eq!(run.tasks[0].state, TaskState::Failed);
    let reason = run.tasks[0].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("after the SLA deadline 2025-09-01T00:25:00Z"),
        "{reason}"
    );
}

#[test]
fn a_backfill_run_keeps_its_retries_past_the_sla_deadline() {
    // The same failure, an hour after the deadline, in a backfill of the interval.
    let run = first_try_failed_at(RunKind::Backfill, 85);
    assert_eq!(run.tasks[0].state, TaskState::UpForRetry);
    assert!(
        run.next_retry_at()
            .is_some_and(|at| at > t0() + TimeDelta::minutes(85))
    );
}

#[test]
fn a_rerun_for_a_rewritten_input_keeps_its_retries_past_the_sla_deadline() {
    // A scheduled run of an old interval, run again because its input was rewritten.
    let run = first_try_failed_in(RunKind::Scheduled, true, 85);
    assert_eq!(run.tasks[0].state, TaskState::UpForRetry);
    assert_eq!(run.deadline(&chain(3, Some(10))), None);
}

#[test]
fn clearing_reruns_a_task_and_its_downstream_with_fresh_retries() {
    let plan = chain(0, None);
    let mut run = RunState::new(&plan, RunKind::Scheduled, interval());
    run.evaluate(&plan, &|_| Past::Satisfied, true, t0());
    run.start(0, t0());
    run.finish(
        &plan,
        0,
        1,
        &Outcome::Failed {
            retryable: true,
            reason: "x".into(),
        },
        t0(),
    );
    run.evaluate(&plan, &|_| Past::Satisfied, true, t0());
    assert_eq!(run.status, RunStatus::Failed);
    run.clear(&plan, &[0], true);
    assert_eq!(run.status, RunStatus::Running);
    assert_eq!(run.tasks[1].state, TaskState::None);
    run.evaluate(&plan, &|_| Past::Satisfied, true, t0());
    run.start(0, t0());
    assert_eq!(run.tasks[0].try_number, 2);
    run.finish(&plan, 0, 2, &Outcome::Success, t0());
    run.evaluate(&plan, &|_| Past::Satisfied, true, t0());
    assert_eq!(run.tasks[1].state, TaskState::Scheduled);
}

#[test]
fn depends_on_past_waits_for_the_previous_run_and_the_gate_defers() {
    let mut plan = chain(0, None);
    plan.tasks[0].depends_on_past = true;
    let mut run = RunState::new(&plan, RunKind::Scheduled, interval());
    run.evaluate(&plan, &|_| Past::Blocking, true, t0());
    assert_eq!(run.tasks[0].state, TaskState::None);
    run.evaluate(&plan, &|_| Past::Satisfied, false, t0());
    assert_eq!(run.tasks[0].state, TaskState::Deferred);
    assert!(!run.tasks[0].state.holds_slot());
    run.evaluate(&plan, &|_| Past::Satisfied, true, t0());
    assert_eq!(run.tasks[0].state, TaskState::Scheduled);
}

proptest! {
    /// Whatever the DAG's shape and trigger rules, a gate that times out before anything ran
    /// ends the run failed, with no task left waiting or started and every task that was
    /// ready failing with the gate's reason.
    #[test]
    fn a_gate_timeout_fails_the_whole_run(specs in dag_spec()) {
        let plan = plan(&specs, 8, None);
        let mut run = RunState::new(&plan, RunKind::Scheduled, interval());
        run.evaluate(&plan, &|_| Past::Satisfied, false, t0());
        prop_assert!(run.tasks.iter().all(|t| !t.state.holds_slot()));
        let deferred: Vec<usize> = (0..run.tasks.len())
            .filter(|&i| run.tasks[i].state == TaskState::Deferred)
            .collect();
        // A run whose tasks all skipped without waiting is over before any timeout.
        prop_assume!(!run.status.is_finished());
        run.gate_timed_out(&plan, &|_| Past::Satisfied, "gate closed", t0());
        prop_assert_eq!(run.status, RunStatus::Failed);
        for (i, task) in run.tasks.iter().enumerate() {
            prop_assert!(task.state.is_finished(), "task {} is {:?}", i, task.state);
            prop_assert_eq!(task.try_number, 0);
            if task.state == TaskState::Failed {
                prop_assert_eq!(task.reason.as_deref(), Some("gate closed"));
            }
        }
        // What waited on the gate failed with its reason.
        for i in deferred {
            prop_assert_eq!(run.tasks[i].state, TaskState::Failed);
        }
    }
}

/// The state diagram in ARCHITECTURE.md is the transition table: every allowed move is drawn
/// there, word for word.
#[test]
fn the_state_diagram_in_architecture_md_is_the_transition_table() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../ARCHITECTURE.md"
    ))
    .expect("ARCHITECTURE.md at the repository root");
    let missing: Vec<String> = crate::transition_lines()
        .into_iter()
        .filter(|line| !doc.contains(line.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md lacks these moves:\n{}",
        missing.join("\n")
    );
}

/// A move outside the table is refused: a finished attempt's report cannot start a task
/// that was never started, and `start` cannot skip `scheduled`.
#[test]
fn moves_outside_the_transition_table_are_refused() {
    assert!(!TaskState::None.may_move(crate::Cause::Start, TaskState::Running));
    assert!(!TaskState::Scheduled.may_move(crate::Cause::Finish, TaskState::Success));
    assert!(!TaskState::Success.may_move(crate::Cause::Evaluate, TaskState::Scheduled));
    assert!(TaskState::Success.may_move(crate::Cause::Clear, TaskState::None));
    assert!(!RunStatus::Success.may_move(crate::Cause::Evaluate, RunStatus::Running));
    let plan = chain(0, None);
    let mut run = RunState::new(&plan, RunKind::Scheduled, interval());
    // A mark turns a finished run's outcome over.
    assert!(RunStatus::Success.may_move(crate::Cause::Settle, RunStatus::Failed));
    // Not scheduled yet: starting it changes nothing.
    assert!(run.start(0, t0()).is_empty());
    assert_eq!(run.tasks[0].state, TaskState::None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Operators and executors in any order — evaluations with the gate open or shut, starts,
    /// attempts ending every way, gate timeouts, clears with and without downstream, marks —
    /// never make a move outside the transition tables (a refused move stops a debug build),
    /// and every change reported is one the tables allow.
    #[test]
    fn any_sequence_of_events_stays_inside_the_transition_tables(
        specs in dag_spec(),
        events in prop::collection::vec((0u8..8, any::<prop::sample::Index>(), 0u8..6), 1..80),
    ) {
        let plan = plan(&specs, 8, Some(60));
        let mut run = RunState::new(&plan, RunKind::Scheduled, interval());
        let mut now = t0();
        for (event, pick, code) in events {
            now += TimeDelta::minutes(1);
            let task = pick.index(plan.tasks.len());
            let before = run.clone();
            let changes = match event {
                0 => run.evaluate(&plan, &|_| Past::Satisfied, true, now),
                1 => run.evaluate(&plan, &|_| Past::Satisfied, false, now),
                2 => run.start(task, now),
                3 => {
                    let try_number = run.tasks[task].try_number;
                    run.finish(&plan, task, try_number, &outcome(code), now)
                }
                4 => run.gate_timed_out(&plan, &|_| Past::Satisfied, "closed", now),
                5 => run.clear(&plan, &[task], code % 2 == 0),
                6 => run.mark(task, TaskState::Success, "by hand"),
                _ => run.mark(task, TaskState::Failed, "by hand"),
            };
            // Each change names a real move from the state before.
            let mut states: Vec<TaskState> = before.tasks.iter().map(|t| t.state).collect();
            let mut status = before.status;
            for change in changes {
                match change {
                    crate::Change::Task { index, from, to, .. } => {
                        prop_assert_eq!(states[index], from);
                        prop_assert!(TaskState::ALL.contains(&to));
                        states[index] = to;
                    }
                    crate::Change::Run { from, to } => {
                        prop_assert_eq!(status, from);
                        status = to;
                    }
                }
            }
            prop_assert_eq!(states, run.tasks.iter().map(|t| t.state).collect::<Vec<_>>());
            prop_assert_eq!(status, run.status);
            // A finished run is a success exactly when every task did its work or was skipped
            // by its rule: a task left upstream_failed (its upstream marked success by hand,
            // say) keeps the interval from counting as processed.
            if run.status.is_finished() {
                let all_done_well = run
                    .tasks
                    .iter()
                    .all(|t| matches!(t.state, TaskState::Success | TaskState::Skipped));
                prop_assert_eq!(run.status == RunStatus::Success, all_done_well);
            }
        }
    }
}
