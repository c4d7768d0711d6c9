//! Rules across fields: ids, dependencies, cycles, time bounds, limits and templates.

use std::collections::{HashMap, HashSet, VecDeque};

use petgraph::algo::tarjan_scc;
use petgraph::graphmap::DiGraphMap;

use super::diagnostic::{Diagnostic, Location, SourceText};
use super::fields::SourceMap;
use super::kinds::Interpreter;
use super::model::Dag;
use super::policy::EffectivePolicy;
use super::suggest;
use super::yaml::ScalarStyle;
use crate::template;

pub struct Validator<'a> {
    pub dag: &'a Dag,
    pub spans: &'a SourceMap,
    pub source: &'a SourceText,
    pub diagnostics: &'a mut Vec<Diagnostic>,
}

/// Ids of DAGs, tasks and pools: what fits in a path, a URL and a run id unchanged.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 250
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        // Ids name folders (`logs/<dag>/…`): `.` and `..` would be the folder itself or its
        // parent.
        && id.chars().any(|c| c != '.')
}

impl<'a> Validator<'a> {
    fn at(&self, path: &str) -> Location {
        self.spans.nearest(path).unwrap_or(Location {
            offset: 0,
            len: 0,
            line: 1,
            column: 1,
        })
    }

    fn report(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    pub fn run(mut self) {
        self.ids();
        self.dependencies();
        self.cycles();
        self.time_bounds();
        self.limits();
        self.task_fields();
        self.templates();
        let assets = super::assets::check_declarations(self.dag, self.spans);
        self.diagnostics.extend(assets);
    }

    fn ids(&mut self) {
        let dag = self.dag;
        if !is_valid_id(&dag.dag) {
            self.report(
                Diagnostic::error(
                    "spec::bad-id",
                    format!("`{}` is not a valid DAG id", dag.dag),
                )
                .at(self.at("dag"), "invalid id")
                .help("use letters, digits, `_`, `-` and `.` (at most 250; not only dots)"),
            );
        }
        if dag.tasks.is_empty() {
            self.report(
                Diagnostic::error("spec::no-tasks", "the DAG has no tasks")
                    .at(self.at("tasks"), "empty")
                    .help("add at least one task; `type: noop` is a placeholder that succeeds"),
            );
        }
        for id in dag.tasks.keys() {
            if !is_valid_id(id) {
                let location = self
                    .spans
                    .key(&format!("tasks.{id}"))
                    .unwrap_or(self.at("tasks"));
                self.report(
                    Diagnostic::error("spec::bad-id", format!("`{id}` is not a valid task id"))
                        .at(location, "invalid id")
                        .help("use letters, digits, `_`, `-` and `.` (at most 250; not only dots)"),
                );
            }
        }
    }

    fn dependencies(&mut self) {
        let dag = self.dag;
        for (id, task) in &dag.tasks {
            let mut seen = HashSet::new();
            for (i, upstream) in task.settings.depends_on.iter().enumerate() {
                let location = self.at(&format!("tasks.{id}.depends_on[{i}]"));
                if upstream == id {
                    self.report(
                        Diagnostic::error(
                            "spec::self-dependency",
                            format!("task `{id}` depends on itself"),
                        )
                        .at(location, "a task cannot wait for itself")
                        .help("remove it from `depends_on`"),
                    );
                } else if !dag.tasks.contains_key(upstream) {
                    let help =
                        match suggest::closest(upstream, dag.tasks.keys().map(String::as_str)) {
                            Some(near) => format!("did you mean `{near}`?"),
                            None => format!(
                                "tasks in this DAG: {}",
                                dag.tasks.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        };
                    self.report(
                        Diagnostic::error(
                            "spec::unknown-dependency",
                            format!("task `{id}` depends on `{upstream}`, which is not a task of this DAG"),
                        )
                        .at(location, "unknown task")
                        .help(help),
                    );
                } else if !seen.insert(upstream.as_str()) {
                    self.report(
                        Diagnostic::warning(
                            "spec::repeated-dependency",
                            format!("`{upstream}` is listed twice in `depends_on` of `{id}`"),
                        )
                        .at(location, "repeated"),
                    );
                }
            }
        }
    }

    fn graph(&self) -> DiGraphMap<&'a str, ()> {
        let dag: &'a Dag = self.dag;
        let mut graph = DiGraphMap::new();
        for (id, task) in &dag.tasks {
            graph.add_node(id.as_str());
            for upstream in &task.settings.depends_on {
                if upstream != id && dag.tasks.contains_key(upstream) {
                    graph.add_edge(id.as_str(), upstream.as_str(), ());
                }
            }
        }
        graph
    }

    fn cycles(&mut self) {
        let graph = self.graph();
        let order: HashMap<&str, usize> = self
            .dag
            .tasks
            .keys()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let mut components: Vec<Vec<&str>> = tarjan_scc(&graph)
            .into_iter()
            .filter(|c| c.len() > 1)
            .collect();
        for component in &mut components {
            component.sort_by_key(|id| order.get(id).copied().unwrap_or(usize::MAX));
        }
        components.sort_by_key(|c| order.get(c[0]).copied());
        for component in components {
            let members: HashSet<&str> = component.iter().copied().collect();
            let cycle = shortest_cycle(&graph, component[0], &members);
            let names = cycle.join(" → ");
            let mut diagnostic =
                Diagnostic::error("spec::cycle", format!("dependency cycle: {names}"))
                    .help("`a → b` means `a` depends on `b`; remove one of these dependencies");
            for pair in cycle.windows(2) {
                let (task, upstream) = (pair[0], pair[1]);
                let index = self.dag.tasks[task]
                    .settings
                    .depends_on
                    .iter()
                    .position(|u| u == upstream)
                    .unwrap_or(0);
                let location = self.at(&format!("tasks.{task}.depends_on[{index}]"));
                let label = format!("`{task}` depends on `{upstream}`");
                diagnostic = if diagnostic.primary.is_none() {
                    diagnostic.at(location, label)
                } else {
                    diagnostic.also(location, label)
                };
            }
            self.report(diagnostic);
        }
    }

    fn time_bounds(&mut self) {
        let dag = self.dag;
        if let (Some(start), Some(end)) = (dag.start, dag.end)
            && start >= end
        {
            self.report(
                Diagnostic::error("spec::start-after-end", "`start` is not before `end`")
                    .at(self.at("start"), format!("starts {start}"))
                    .also(self.at("end"), format!("ends {end}"))
                    .help("swap them, or remove `end` to run indefinitely"),
            );
        }
        if let Some(schedule) = &dag.schedule {
            // A `start` that is present but unreadable was reported already.
            let start_unreadable = self.spans.value("start").is_some();
            match dag.start {
                None if start_unreadable => {}
                None => self.report(
                    Diagnostic::error(
                        "spec::missing-start",
                        "a scheduled DAG needs `start`, the beginning of its first interval",
                    )
                    .at(self.at("schedule"), "scheduled here")
                    .help("add e.g. `start: 2025-09-01T00:00:00Z`"),
                ),
                Some(start) => {
                    let tz = dag.timezone.tz();
                    let first = schedule.intervals(tz, start).next();
                    let fits = first.is_some_and(|i| dag.end.is_none_or(|end| i.end <= end));
                    if !fits && dag.end.is_some_and(|end| end > start) {
                        self.report(
                            Diagnostic::warning(
                                "spec::no-intervals",
                                "no whole interval of the schedule fits between `start` and `end`",
                            )
                            .at(self.at("end"), "ends too early"),
                        );
                    }
                }
            }
        } else if dag.catchup {
            self.report(
                Diagnostic::warning(
                    "spec::catchup-without-schedule",
                    "`catchup` has no effect without a schedule",
                )
                .at(self.at("catchup"), "ignored"),
            );
        }
        if let Some(sla) = &dag.sla
            && let (Some(warn), Some(deadline)) = (sla.warn_after, sla.deadline)
            && warn > deadline
        {
            self.report(
                Diagnostic::error(
                    "spec::sla-order",
                    format!("`sla.warn_after` ({warn}) is after `sla.deadline` ({deadline})"),
                )
                .at(self.at("sla.warn_after"), "warns too late")
                .help("the warning should come before the deadline"),
            );
        }
        if let Some(gate) = &dag.gate {
            self.gate_groups(&gate.kafka);
        }
        if let Some(gate) = &dag.gate
            && gate.kafka.reprocess_late_data
            && gate.kafka.arrivals_topic.is_none()
        {
            self.report(
                Diagnostic::error(
                    "spec::late-data-without-reports",
                    "`reprocess_late_data` needs `arrivals_topic`: late data is counted from the raw-zone sink's arrival reports",
                )
                .at(self.at("gate.kafka.reprocess_late_data"), "nothing would count late data")
                .help("name the topic the raw-zone sink reports its writes to (`arrivals_topic: events.arrivals`), or drop `reprocess_late_data`"),
            );
        }
    }

    /// `group` or `groups`, one of them; per-group rules only under `groups`; some group
    /// waited for.
    fn gate_groups(&mut self, kafka: &super::model::KafkaGate) {
        let (single, several) = (!kafka.group.is_empty(), !kafka.groups.is_empty());
        if single && several {
            self.report(
                Diagnostic::error(
                    "spec::gate-groups",
                    "the gate names `group` and `groups`: one of them",
                )
                .at(
                    self.at("gate.kafka.groups"),
                    "a second way of naming groups",
                )
                .help("move `group` into `groups` with its rule, or drop `groups`"),
            );
        } else if !single && !several {
            self.report(
                Diagnostic::error(
                    "spec::gate-groups",
                    "the Kafka gate watches no consumer group",
                )
                .at(self.at("gate.kafka"), "no `group` or `groups`")
                .help("add `group: <the consumer group whose output the DAG reads>`"),
            );
        }
        if kafka.groups.len() > super::model::MAX_GATE_GROUPS {
            self.report(
                Diagnostic::error(
                    "spec::gate-groups",
                    format!(
                        "the gate watches {} consumer groups; at most {}",
                        kafka.groups.len(),
                        super::model::MAX_GATE_GROUPS
                    ),
                )
                .at(
                    self.at("gate.kafka.groups"),
                    "each group costs a request on every look",
                )
                .help("watch the groups whose output the DAG reads, and show the others on a dashboard"),
            );
        }
        if several && !single {
            for (field, set) in [
                ("max_lag", kafka.max_lag.is_some()),
                ("max_lag_time", kafka.max_lag_time.is_some()),
            ] {
                if set {
                    self.report(
                        Diagnostic::error(
                            "spec::gate-groups",
                            format!("`{field}` beside `groups` would say nothing of which group"),
                        )
                        .at(
                            self.at(&format!("gate.kafka.{field}")),
                            "move it into a group",
                        )
                        .help(format!("`groups: {{<group>: {{{field}: …}}}}`")),
                    );
                }
            }
            if kafka.groups.values().all(|rule| !rule.required) {
                self.report(
                    Diagnostic::error(
                        "spec::gate-groups",
                        "no group under `groups` is required: the gate would wait for no consumer",
                    )
                    .at(
                        self.at("gate.kafka.groups"),
                        "every group `required: false`",
                    )
                    .help("the group whose output the DAG reads is required (the default)"),
                );
            }
        }
    }

    fn limits(&mut self) {
        let dag = self.dag;
        for (field, value) in [
            ("max_active_runs", dag.max_active_runs),
            ("max_active_tasks", dag.max_active_tasks),
        ] {
            if value == 0 {
                self.report(
                    Diagnostic::error(
                        "spec::out-of-range",
                        format!("`{field}` must be at least 1"),
                    )
                    .at(self.at(field), "0 would never run anything"),
                );
            }
        }
        let mut policies = vec![("defaults".to_owned(), &dag.defaults)];
        policies.extend(
            dag.tasks
                .iter()
                .map(|(id, t)| (format!("tasks.{id}"), &t.settings.policy)),
        );
        for (prefix, policy) in policies {
            let delay = EffectivePolicy::merge(policy, &dag.defaults).retry_delay;
            if let Some(max) = policy.max_retry_delay
                && max < delay
            {
                self.report(
                    Diagnostic::error(
                        "spec::retry-delay-order",
                        format!(
                            "`max_retry_delay` ({max}) is shorter than `retry_delay` ({delay})"
                        ),
                    )
                    .at(
                        self.at(&format!("{prefix}.max_retry_delay")),
                        "cap below the first delay",
                    )
                    .help("raise `max_retry_delay` or lower `retry_delay`"),
                );
            }
            if policy.timeout.is_some_and(|t| t.is_zero()) {
                self.report(
                    Diagnostic::error("spec::out-of-range", "`timeout` must be longer than 0s")
                        .at(self.at(&format!("{prefix}.timeout")), "zero"),
                );
            }
            if let Some(pool) = &policy.pool
                && !is_valid_id(pool)
            {
                self.report(
                    Diagnostic::error("spec::bad-id", format!("`{pool}` is not a valid pool name"))
                        .at(self.at(&format!("{prefix}.pool")), "invalid name")
                        .help("use letters, digits, `_`, `-` and `.`"),
                );
            }
        }
    }

    fn task_fields(&mut self) {
        let dag = self.dag;
        for (id, task) in &dag.tasks {
            for problem in task.kind.check(id) {
                let mut diagnostic = Diagnostic::error(problem.code, problem.message).at(
                    self.at(&format!("tasks.{id}.{}", problem.field)),
                    problem.label,
                );
                if let Some(help) = problem.help {
                    diagnostic = diagnostic.help(help);
                }
                self.report(diagnostic);
            }
        }
    }

    fn templates(&mut self) {
        let dag = self.dag;
        let graph = self.graph();
        for (id, task) in &dag.tasks {
            let upstream = ancestors(&graph, id);
            let mut kind = task.kind.clone();
            let mut found = Vec::new();
            kind.visit_templates_mut(&mut |field, text| {
                if template::is_template(text) {
                    found.push((
                        format!("tasks.{id}.{field}"),
                        text.clone(),
                        task.kind.interpreter_of(field),
                    ));
                }
            });
            for (path, text, interpreter) in found {
                self.template(&path, id, &text, &upstream);
                if let Some(interpreter) = interpreter {
                    self.unquoted_params(&path, &text, interpreter);
                }
            }
        }
    }

    fn template(&mut self, path: &str, task_id: &str, text: &str, upstream: &HashSet<&str>) {
        let names = match template::referenced_names(text) {
            Ok(names) => names,
            Err(e) => {
                let offset = e.range.as_ref().map_or(0, |r| r.start);
                let len = e.range.as_ref().map_or(1, |r| r.len().max(1));
                let location = self.locate_in_template(path, text, offset, len);
                self.report(
                    Diagnostic::error(
                        "spec::template-syntax",
                        format!("template error in `{path}`: {}", e.message),
                    )
                    .at(location, "here")
                    .help("templates use minijinja (Jinja2) syntax: `{{ name }}`, `{% if %}…{% endif %}`"),
                );
                return;
            }
        };
        for name in names {
            let mut parts = name.split('.');
            let root = parts.next().unwrap_or_default();
            let member = parts.next();
            let problem = if !template::CONTEXT_NAMES.contains(&root) {
                let help = match suggest::closest(root, template::CONTEXT_NAMES.iter().copied()) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!("available names: {}", template::CONTEXT_NAMES.join(", ")),
                };
                Some((format!("undefined name `{root}`"), help))
            } else if root == "params" {
                member
                    .filter(|m| !self.dag.params.contains_key(*m))
                    .map(|m| {
                        (
                            format!("undefined parameter `params.{m}`"),
                            "declare it under `params:` in this DAG".to_owned(),
                        )
                    })
            } else if root == "outputs" {
                member.filter(|m| !upstream.contains(m)).map(|m| {
                    if self.dag.tasks.contains_key(m) {
                        (
                            format!("`outputs.{m}`: task `{m}` is not upstream of `{task_id}`"),
                            format!("add `{m}` to `depends_on` of `{task_id}` (directly or through another task)"),
                        )
                    } else {
                        let near = suggest::closest(m, self.dag.tasks.keys().map(String::as_str));
                        (
                            format!("`outputs.{m}`: no task `{m}` in this DAG"),
                            near.map_or("outputs are read from upstream tasks by their id".to_owned(), |n| {
                                format!("did you mean `outputs.{n}`?")
                            }),
                        )
                    }
                })
            } else {
                None
            };
            if let Some((message, help)) = problem {
                let needle = match (root, member) {
                    ("params" | "outputs", Some(m)) => m,
                    _ => root,
                };
                let offset = find_name(text, needle).unwrap_or(0);
                let location = self.locate_in_template(path, text, offset, needle.len());
                self.report(
                    Diagnostic::error(
                        "spec::template-undefined",
                        format!("template error in `{path}`: {message}"),
                    )
                    .at(location, "undefined")
                    .help(help),
                );
            }
        }
    }

    /// Warns where a param that a run's conf may set reaches a shell line or SQL without
    /// its quoting filter (params that are numbers, booleans or one of an `enum` are safe).
    fn unquoted_params(&mut self, path: &str, text: &str, interpreter: Interpreter) {
        let (filters, reader, example) = match interpreter {
            Interpreter::Shell => (
                template::quoting::SHELL_FILTERS,
                "a shell line",
                "shell_quote",
            ),
            Interpreter::Sql => (template::quoting::SQL_FILTERS, "SQL", "sql_string"),
        };
        for (name, offset) in template::quoting::unquoted_params(text, filters) {
            if self
                .dag
                .param_specs
                .get(&name)
                .is_some_and(|spec| spec.is_inert())
            {
                continue;
            }
            let location =
                self.locate_in_template(path, text, offset, "params.".len() + name.len());
            self.report(
                Diagnostic::warning(
                    "spec::unquoted-param",
                    format!("`params.{name}` reaches {reader} unquoted in `{path}`"),
                )
                .at(location, "a run's conf sets this")
                .help(format!(
                    "end the expression with `| {example}` (a whole value, one literal), or \
                     declare the param with an `enum`; a command given as a list needs no shell"
                )),
            );
        }
    }

    /// Maps a byte offset inside a templated value back into the file, by finding the
    /// value's line in the file text; falls back to the start of the value.
    fn locate_in_template(&self, path: &str, value: &str, offset: usize, len: usize) -> Location {
        let node = self.at(path);
        let offset = offset.min(value.len());
        let line_index = value[..offset].matches('\n').count();
        let line_start = value[..offset].rfind('\n').map_or(0, |i| i + 1);
        let value_line = value[line_start..].lines().next().unwrap_or_default();
        let column_bytes = offset - line_start;
        let first_file_line = match self.spans.scalar_style(path) {
            Some(ScalarStyle::Block) => node.line + 1,
            _ => node.line,
        };
        for file_line in [first_file_line + line_index, node.line + line_index] {
            let text = self.source.line_text(file_line);
            let Some(found) = (!value_line.is_empty())
                .then(|| text.find(value_line))
                .flatten()
            else {
                continue;
            };
            let line_offset = self.source.offset_of(file_line, 0);
            return self
                .source
                .location(line_offset + found + column_bytes, len);
        }
        node
    }
}

/// Offset of `name` as a whole word in a template.
fn find_name(text: &str, name: &str) -> Option<usize> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(name).map(|(i, _)| i).find(|&i| {
        let before = text[..i].chars().next_back();
        let after = text[i + name.len()..].chars().next();
        before.is_none_or(|c| !is_word(c)) && after.is_none_or(|c| !is_word(c))
    })
}

/// All tasks `id` depends on, directly or transitively.
fn ancestors<'a>(graph: &DiGraphMap<&'a str, ()>, id: &'a str) -> HashSet<&'a str> {
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([id]);
    while let Some(current) = queue.pop_front() {
        for next in graph.neighbors(current) {
            if seen.insert(next) {
                queue.push_back(next);
            }
        }
    }
    seen.remove(id);
    seen
}

/// The shortest path from `start` back to itself inside one strongly connected component.
fn shortest_cycle<'a>(
    graph: &DiGraphMap<&'a str, ()>,
    start: &'a str,
    members: &HashSet<&'a str>,
) -> Vec<&'a str> {
    let mut previous: HashMap<&str, &str> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(current) = queue.pop_front() {
        let mut next_nodes: Vec<&str> = graph
            .neighbors(current)
            .filter(|n| members.contains(n))
            .collect();
        next_nodes.sort_unstable();
        for next in next_nodes {
            if next == start {
                let mut path = vec![start, current];
                let mut at = current;
                while at != start {
                    at = previous[at];
                    path.push(at);
                }
                // `path` runs backwards from the start; flip it to read in dependency order.
                path.reverse();
                return path;
            }
            if next != start && !previous.contains_key(next) {
                previous.insert(next, current);
                queue.push_back(next);
            }
        }
    }
    vec![start, start]
}
