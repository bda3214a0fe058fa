//! Named fault points in the data path (before and after an fsync, around a metadata commit,
//! inside repair), so that a test can make the fault that would break a piece of code happen
//! exactly there, deterministically.
//!
//! Owns: `hit(name)`, which says whether the fault point `name` fires now, and what it does.
//! Must never depend on: any other crate (it sits below everything that uses it).
//! Invariants: without the `enabled` feature `hit` is a constant `None` and compiles away; with
//! it, faults come only from the `IGNIFUGE_FAULTS` environment variable of the process, read
//! once: `name=action[@n][,name=action[@n]...]`, where action is `error`, `panic`, `exit` or
//! `sleep:<ms>`, and `@n` makes it fire at the n-th hit of that point only (1-based; `@n-m` at
//! hits n to m; without it, at every hit). A name may be scoped to one process, `scope/name=...`: it then fires only in
//! the process that called `set_scope(scope)` (a storage node's scope is its node id), so a test
//! can fail one node's disk while the whole cluster shares one environment.
//!
//! Runtime rules. A test also writes, and rewrites while the cluster runs, rules in the file named
//! by `IGNIFUGE_LINKS_FILE` (re-read when it changes, at most every 50 ms; no file or an empty
//! one: no fault). A process is known by the address it listens on (`set_identity`). One rule per
//! line; A and B are comma-separated addresses:
//! - `cut A | B` loses every request between a member of A and a member of B, both ways (a network
//!   partition: requests get no answer until their timeout); `link(to)` says so;
//! - `slow A > B <ms>` delays requests from A to B by that long (a slow link);
//! - `clock A <ms>` shifts the wall clock of the members of A by that many milliseconds, ahead
//!   or (negative) behind (`clock_offset_ms`, read by `ignifuge_types::time`);
//! - `fail A <point>` makes fault point `<point>` answer `error` at every hit in the members of
//!   A while the rule stands (a disk that fails, then is replaced);
//! - `crash A <point>` makes the members of A exit at fault point `<point>` (exit code 137, no
//!   cleanup, as after kill -9); the test clears the rule before it restarts them.

/// What a fault point that fires does; the code at the point decides what `Error` means there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Fail the operation as the point documents (an I/O error, a lost answer, ...).
    Error,
    /// Sleep this long, then go on (a stall).
    Sleep(u64),
    /// The message is lost: no answer ever comes (a partitioned link).
    Drop,
}

/// Whether fault point `name` fires now. `panic` and `exit` actions never return (`exit` is a
/// crash with no cleanup: exit code 137, as after kill -9).
#[cfg(not(feature = "enabled"))]
#[inline(always)]
pub fn hit(_name: &str) -> Option<Action> {
    None
}

/// Names this process for scoped fault points (`scope/name=...`); call once at start-up.
#[cfg(not(feature = "enabled"))]
#[inline(always)]
pub fn set_scope(_scope: &str) {}

/// What happens to a request from this process to `to` (see "Links" above).
#[cfg(not(feature = "enabled"))]
#[inline(always)]
pub fn link(_to: &str) -> Option<Action> {
    None
}

/// Names this process by the address it listens on, for link rules; call once at start-up.
#[cfg(not(feature = "enabled"))]
#[inline(always)]
pub fn set_identity(_address: &str) {}

/// How far this process's wall clock is shifted by a `clock` rule, in milliseconds.
#[cfg(not(feature = "enabled"))]
#[inline(always)]
pub fn clock_offset_ms() -> i64 {
    0
}

#[cfg(feature = "enabled")]
pub use enabled::{clock_offset_ms, hit, link, set_identity, set_scope};

/// How long a process may act on the runtime rules it read before a rewrite of the rules file:
/// a test that writes a rule waits this long (and a little more) before the step it is for.
pub const RULES_REREAD_MS: u64 = 50;

#[cfg(feature = "enabled")]
mod enabled {
    use super::Action;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Clone, Copy, Debug)]
    enum Effect {
        Return(Action),
        Panic,
        Exit,
    }

    struct Point {
        /// Fires only in the process of this scope, if set.
        scope: Option<String>,
        name: String,
        effect: Effect,
        /// Fire only at these hits (1-based, inclusive), or at every hit.
        at: Option<(u64, u64)>,
        hits: AtomicU64,
    }

    fn parse(spec: &str) -> Vec<Point> {
        spec.split(',')
            .filter(|s| !s.trim().is_empty())
            .filter_map(|item| {
                let (name, rest) = item.trim().split_once('=')?;
                let (scope, name) = match name.split_once('/') {
                    Some((scope, name)) => (Some(scope.to_string()), name),
                    None => (None, name),
                };
                let (action, at) = match rest.split_once('@') {
                    Some((a, n)) => match n.split_once('-') {
                        Some((first, last)) => (a, Some((first.parse().ok()?, last.parse().ok()?))),
                        None => (a, Some((n.parse().ok()?, n.parse().ok()?))),
                    },
                    None => (rest, None),
                };
                let effect = match action {
                    "error" => Effect::Return(Action::Error),
                    "panic" => Effect::Panic,
                    "exit" => Effect::Exit,
                    sleep => Effect::Return(Action::Sleep(sleep.strip_prefix("sleep:")?.parse().ok()?)),
                };
                Some(Point { scope, name: name.to_string(), effect, at, hits: AtomicU64::new(0) })
            })
            .collect()
    }

    fn points() -> &'static [Point] {
        static POINTS: OnceLock<Vec<Point>> = OnceLock::new();
        POINTS.get_or_init(|| parse(&std::env::var("IGNIFUGE_FAULTS").unwrap_or_default()))
    }

    static SCOPE: OnceLock<String> = OnceLock::new();

    pub fn set_scope(scope: &str) {
        let _ = SCOPE.set(scope.to_string());
    }

    /// A runtime rule: `cut A | B` (both ways), `slow A > B ms` (one way), `clock A ms`,
    /// `fail A point`.
    #[derive(Debug, PartialEq)]
    enum Rule {
        Cut(Vec<String>, Vec<String>),
        Slow(Vec<String>, Vec<String>, u64),
        Clock(Vec<String>, i64),
        Fail(Vec<String>, String),
        Crash(Vec<String>, String),
    }

    fn members(list: &str) -> Vec<String> {
        list.split(',').map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect()
    }

    fn parse_links(text: &str) -> Vec<Rule> {
        text.lines()
            .filter_map(|line| {
                let line = line.trim();
                if let Some(rest) = line.strip_prefix("cut ") {
                    let (a, b) = rest.split_once('|')?;
                    return Some(Rule::Cut(members(a), members(b)));
                }
                if let Some(rest) = line.strip_prefix("clock ") {
                    let (a, ms) = rest.trim().rsplit_once(' ')?;
                    return Some(Rule::Clock(members(a), ms.parse().ok()?));
                }
                if let Some(rest) = line.strip_prefix("fail ") {
                    let (a, point) = rest.trim().rsplit_once(' ')?;
                    return Some(Rule::Fail(members(a), point.to_string()));
                }
                if let Some(rest) = line.strip_prefix("crash ") {
                    let (a, point) = rest.trim().rsplit_once(' ')?;
                    return Some(Rule::Crash(members(a), point.to_string()));
                }
                let rest = line.strip_prefix("slow ")?;
                let (a, rest) = rest.split_once('>')?;
                let (b, ms) = rest.trim().rsplit_once(' ')?;
                Some(Rule::Slow(members(a), members(b), ms.parse().ok()?))
            })
            .collect()
    }

    fn has(list: &[String], who: &str) -> bool {
        list.iter().any(|m| m == who)
    }

    fn judge(rules: &[Rule], me: &str, to: &str) -> Option<Action> {
        rules.iter().find_map(|rule| match rule {
            Rule::Cut(a, b) if (has(a, me) && has(b, to)) || (has(b, me) && has(a, to)) => Some(Action::Drop),
            Rule::Slow(a, b, ms) if has(a, me) && has(b, to) => Some(Action::Sleep(*ms)),
            _ => None,
        })
    }

    static IDENTITY: OnceLock<String> = OnceLock::new();

    pub fn set_identity(address: &str) {
        let _ = IDENTITY.set(address.to_string());
    }

    /// The rules in force, re-read from the rules file at most every 50 ms when it changed.
    struct Rules {
        checked: std::time::Instant,
        /// The file's modification time and length when read: a rewrite within one mtime tick
        /// (a test clearing a rule and writing another) still changes the length, or is read
        /// again at the next check.
        stamp: Option<(std::time::SystemTime, u64)>,
        rules: std::sync::Arc<Vec<Rule>>,
    }

    /// This process's identity and the runtime rules in force, if there is a rules file.
    fn runtime_rules() -> Option<(&'static str, std::sync::Arc<Vec<Rule>>)> {
        static PATH: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
        static RULES: std::sync::Mutex<Option<Rules>> = std::sync::Mutex::new(None);
        let path = PATH.get_or_init(|| std::env::var_os("IGNIFUGE_LINKS_FILE").map(Into::into)).as_ref()?;
        let me = IDENTITY.get()?;
        let mut rules = RULES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let stale = rules
            .as_ref()
            .is_none_or(|r| r.checked.elapsed() >= std::time::Duration::from_millis(super::RULES_REREAD_MS));
        if stale {
            let stamp = std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
            let parsed = match rules.as_ref() {
                Some(r) if r.stamp == stamp => r.rules.clone(),
                _ => std::sync::Arc::new(parse_links(&std::fs::read_to_string(path).unwrap_or_default())),
            };
            *rules = Some(Rules { checked: std::time::Instant::now(), stamp, rules: parsed });
        }
        Some((me.as_str(), rules.as_ref().expect("just set").rules.clone()))
    }

    pub fn link(to: &str) -> Option<Action> {
        let (me, rules) = runtime_rules()?;
        judge(&rules, me, to)
    }

    fn clock_offset(rules: &[Rule], me: &str) -> i64 {
        rules
            .iter()
            .find_map(|rule| match rule {
                Rule::Clock(a, ms) if has(a, me) => Some(*ms),
                _ => None,
            })
            .unwrap_or(0)
    }

    /// What a runtime rule makes fault point `name` do in this process, if any rule names it.
    fn ruled(rules: &[Rule], me: &str, name: &str) -> Option<Effect> {
        rules.iter().find_map(|rule| match rule {
            Rule::Fail(a, point) if point == name && has(a, me) => Some(Effect::Return(Action::Error)),
            Rule::Crash(a, point) if point == name && has(a, me) => Some(Effect::Exit),
            _ => None,
        })
    }

    pub fn clock_offset_ms() -> i64 {
        runtime_rules().map_or(0, |(me, rules)| clock_offset(&rules, me))
    }

    pub fn hit(name: &str) -> Option<Action> {
        if let Some(effect) = runtime_rules().and_then(|(me, rules)| ruled(&rules, me, name)) {
            return fire(name, effect, "a runtime rule");
        }
        let scope = SCOPE.get();
        let point = points().iter().find(|p| p.name == name && p.scope.as_ref().is_none_or(|s| Some(s) == scope))?;
        let hit = point.hits.fetch_add(1, Ordering::Relaxed) + 1;
        if point.at.is_some_and(|(first, last)| !(first..=last).contains(&hit)) {
            return None;
        }
        fire(name, point.effect, &format!("hit {hit}"))
    }

    fn fire(name: &str, effect: Effect, why: &str) -> Option<Action> {
        eprintln!("fault point {name} fires ({effect:?}, {why})");
        match effect {
            Effect::Return(action) => Some(action),
            Effect::Panic => panic!("fault point {name}"),
            Effect::Exit => std::process::exit(137),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn specs_parse_into_points() {
            let points = parse("a=error@2, b=sleep:50,c=exit,bad,d=nonsense,dc2-n2/e=error,f=error@1-2,g=error@x-2");
            let names: Vec<_> = points.iter().map(|p| p.name.as_str()).collect();
            assert_eq!(names, vec!["a", "b", "c", "e", "f"]);
            assert_eq!(points[3].scope.as_deref(), Some("dc2-n2"));
            assert_eq!(points[0].scope, None);
            assert_eq!(points[0].at, Some((2, 2)));
            assert_eq!(points[4].at, Some((1, 2)), "hits 1 to 2");
            assert!(matches!(points[1].effect, Effect::Return(Action::Sleep(50))));
            assert!(matches!(points[2].effect, Effect::Exit));
        }

        #[test]
        fn link_rules_cut_both_ways_and_slow_one_way() {
            let rules = parse_links("cut a:1, b:2 | c:3\nslow a:1 > d:4 250\nnonsense\n");
            assert_eq!(rules.len(), 2);
            assert_eq!(judge(&rules, "a:1", "c:3"), Some(Action::Drop));
            assert_eq!(judge(&rules, "c:3", "b:2"), Some(Action::Drop), "a cut is both ways");
            assert_eq!(judge(&rules, "a:1", "b:2"), None, "within one side");
            assert_eq!(judge(&rules, "a:1", "d:4"), Some(Action::Sleep(250)));
            assert_eq!(judge(&rules, "d:4", "a:1"), None, "a slow link is one way");
        }

        #[test]
        fn clock_and_fail_rules_name_their_processes() {
            let rules = parse_links("clock a:1, b:2 -90000\nclock c:3 120000\nfail b:2 node.shard.write-error\n");
            assert_eq!(rules.len(), 3);
            assert_eq!(clock_offset(&rules, "a:1"), -90_000);
            assert_eq!(clock_offset(&rules, "c:3"), 120_000);
            assert_eq!(clock_offset(&rules, "d:4"), 0);
            assert!(matches!(ruled(&rules, "b:2", "node.shard.write-error"), Some(Effect::Return(Action::Error))));
            assert!(ruled(&rules, "a:1", "node.shard.write-error").is_none());
            assert!(ruled(&rules, "b:2", "node.shard.read-error").is_none());
            let crash = parse_links("crash a:1 raft.snapshot.install\n");
            assert!(matches!(ruled(&crash, "a:1", "raft.snapshot.install"), Some(Effect::Exit)));
            assert!(ruled(&crash, "b:2", "raft.snapshot.install").is_none());
            assert_eq!(judge(&rules, "a:1", "b:2"), None, "clock and fail rules cut no link");
        }
    }
}
