//! The resource graph: one node per resource, two kinds of edge, and validation.
//!
//! Edges point from upstream to downstream. An [`EdgeKind::Ordering`] edge (from
//! `resource_deps`) only delays the downstream's start until the upstream is
//! ready. An [`EdgeKind::Data`] edge (from `data_deps`) also delays the start, and
//! in addition makes every re-run of the upstream re-run the downstream. Images
//! are not nodes: a change to an image's files is attributed to the resources that
//! deploy it (see [`crate::affected`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;

use loop_lang::model::Manifest;
use loop_lang::{Diagnostic, Location};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction::{Incoming, Outgoing};
use serde::Serialize;

/// The kind of an edge between two resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// From `resource_deps`: start after the upstream is ready. Changes do not
    /// propagate along it.
    Ordering,
    /// From `data_deps`: start after the upstream, and re-run whenever it re-runs.
    Data,
}

impl EdgeKind {
    /// The Loopfile argument that declares this kind of edge.
    pub fn field(self) -> &'static str {
        match self {
            EdgeKind::Ordering => "resource_deps",
            EdgeKind::Data => "data_deps",
        }
    }
}

impl fmt::Display for EdgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EdgeKind::Ordering => "ordering",
            EdgeKind::Data => "data",
        })
    }
}

/// One edge, for output: `downstream` starts after `upstream`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Edge<'a> {
    pub upstream: &'a str,
    pub downstream: &'a str,
    pub kind: EdgeKind,
}

/// The validated dependency graph of a [`Manifest`]'s resources.
///
/// Node `i` is `manifest.resources[i]`; resources keep their declaration index.
#[derive(Clone, Debug)]
pub struct Graph {
    graph: DiGraph<(), EdgeKind, u32>,
    by_name: HashMap<String, u32>,
    topo: Vec<u32>,
    prop: Propagation,
}

impl Graph {
    /// Builds and validates the graph: every dependency must name an existing
    /// resource, names must be unique, and there must be no cycle over either
    /// kind of edge. On failure every problem found is returned, in a
    /// deterministic order (unknown names and duplicates in declaration order,
    /// then cycles by their smallest member).
    pub fn build(manifest: &Manifest) -> Result<Graph, GraphError> {
        let resources = &manifest.resources;
        let mut problems = Vec::new();
        let mut by_name: HashMap<String, u32> = HashMap::with_capacity(resources.len());
        for (i, r) in resources.iter().enumerate() {
            if let Some(&first) = by_name.get(r.name.as_str()) {
                problems.push(GraphProblem::DuplicateName {
                    name: r.name.clone(),
                    first: resources[first as usize].defined_at.clone(),
                    second: r.defined_at.clone(),
                });
            } else {
                by_name.insert(r.name.clone(), i as u32);
            }
        }

        let edge_count = resources
            .iter()
            .map(|r| r.resource_deps.len() + r.data_deps.len())
            .sum();
        let mut graph = DiGraph::with_capacity(resources.len(), edge_count);
        for _ in resources {
            graph.add_node(());
        }
        for (i, r) in resources.iter().enumerate() {
            for (kind, list) in [
                (EdgeKind::Ordering, &r.resource_deps),
                (EdgeKind::Data, &r.data_deps),
            ] {
                for (j, dep) in list.iter().enumerate() {
                    if list[..j].contains(dep) {
                        continue;
                    }
                    match by_name.get(dep.as_str()) {
                        Some(&up) => {
                            graph.add_edge(NodeIndex::new(up as usize), NodeIndex::new(i), kind);
                        }
                        None => problems.push(unknown_dep(manifest, i, dep, kind)),
                    }
                }
            }
        }

        let names: Vec<String> = resources.iter().map(|r| r.name.clone()).collect();
        problems.extend(find_cycles(&graph, manifest));
        if !problems.is_empty() {
            return Err(GraphError { problems });
        }

        let topo = topo_sort(&graph);
        let mut rank = vec![0u32; names.len()];
        for (pos, &node) in topo.iter().enumerate() {
            rank[node as usize] = pos as u32;
        }
        let mut data_out = vec![Vec::new(); names.len()];
        for e in graph.edge_references() {
            if *e.weight() == EdgeKind::Data {
                data_out[e.source().index()].push(e.target().index() as u32);
            }
        }
        let prop = Propagation {
            names,
            rank,
            data_out,
        };
        Ok(Graph {
            graph,
            by_name,
            topo,
            prop,
        })
    }

    /// The number of resources.
    pub fn len(&self) -> usize {
        self.prop.names.len()
    }

    /// Whether the graph has no resources.
    pub fn is_empty(&self) -> bool {
        self.prop.names.is_empty()
    }

    /// The declaration index of a resource (its index in `manifest.resources`).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).map(|&i| i as usize)
    }

    /// Resource names in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.prop.names.iter().map(String::as_str)
    }

    /// The run order: every resource after all its upstreams (both kinds of
    /// edge); among resources that are ready at the same time, the one declared
    /// first comes first.
    pub fn topo_order(&self) -> impl Iterator<Item = &str> + '_ {
        self.topo
            .iter()
            .map(|&i| self.prop.names[i as usize].as_str())
    }

    /// The resources `name` must wait for through `resource_deps`, in the order
    /// declared. Empty for an unknown name.
    ///
    /// A data edge also delays the start; use [`Graph::upstreams`] for all of them.
    pub fn ordering_upstreams(&self, name: &str) -> Vec<&str> {
        self.upstreams(name)
            .into_iter()
            .filter(|&(_, kind)| kind == EdgeKind::Ordering)
            .map(|(up, _)| up)
            .collect()
    }

    /// Every direct upstream of `name` with the kind of its edge, ordering edges
    /// first, each in the order declared. Empty for an unknown name.
    pub fn upstreams(&self, name: &str) -> Vec<(&str, EdgeKind)> {
        self.neighbors(name, Incoming)
    }

    /// Every direct downstream of `name` with the kind of its edge, in edge
    /// creation order (downstreams in declaration order). Empty for an unknown name.
    pub fn downstreams(&self, name: &str) -> Vec<(&str, EdgeKind)> {
        self.neighbors(name, Outgoing)
    }

    fn neighbors(&self, name: &str, dir: petgraph::Direction) -> Vec<(&str, EdgeKind)> {
        let Some(&i) = self.by_name.get(name) else {
            return Vec::new();
        };
        let mut edges: Vec<_> = self
            .graph
            .edges_directed(NodeIndex::new(i as usize), dir)
            .collect();
        // petgraph lists a node's edges newest first.
        edges.sort_by_key(|e| e.id());
        edges
            .into_iter()
            .map(|e| {
                let other = if dir == Incoming {
                    e.source()
                } else {
                    e.target()
                };
                (self.prop.names[other.index()].as_str(), *e.weight())
            })
            .collect()
    }

    /// The given resources plus everything downstream of them along data edges
    /// (ordering edges do not propagate), each once, in run order. Unknown names
    /// are skipped.
    pub fn data_downstream_closure<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Vec<&str> {
        let seeds = names
            .into_iter()
            .filter_map(|n| self.by_name.get(n).copied());
        self.prop
            .close(seeds)
            .into_iter()
            .map(|i| self.prop.names[i as usize].as_str())
            .collect()
    }

    /// Every edge, grouped by downstream in declaration order, `resource_deps`
    /// before `data_deps`, each in the order listed (duplicates listed once).
    pub fn edges(&self) -> impl Iterator<Item = Edge<'_>> + '_ {
        self.graph.edge_references().map(|e| Edge {
            upstream: &self.prop.names[e.source().index()],
            downstream: &self.prop.names[e.target().index()],
            kind: *e.weight(),
        })
    }

    /// What [`crate::affected::AffectedIndex`] needs to propagate changes.
    pub(crate) fn propagation(&self) -> &Propagation {
        &self.prop
    }
}

/// Names, run order and data edges: enough to turn directly affected resources
/// into the full affected set.
#[derive(Clone, Debug)]
pub(crate) struct Propagation {
    pub(crate) names: Vec<String>,
    /// The position of each resource in the run order.
    rank: Vec<u32>,
    /// Data-edge downstreams of each resource.
    data_out: Vec<Vec<u32>>,
}

impl Propagation {
    /// The seeds and their data-downstream closure, each once, in run order.
    pub(crate) fn close(&self, seeds: impl IntoIterator<Item = u32>) -> Vec<u32> {
        let mut seen = vec![0u64; self.names.len().div_ceil(64)];
        let mut insert = |i: u32| {
            let (word, bit) = (i as usize / 64, 1u64 << (i % 64));
            let new = seen[word] & bit == 0;
            seen[word] |= bit;
            new
        };
        let mut out = Vec::new();
        let mut stack: Vec<u32> = seeds
            .into_iter()
            .filter(|&i| (i as usize) < self.names.len())
            .collect();
        while let Some(i) = stack.pop() {
            if insert(i) {
                out.push(i);
                stack.extend_from_slice(&self.data_out[i as usize]);
            }
        }
        out.sort_unstable_by_key(|&i| self.rank[i as usize]);
        out
    }
}

/// Kahn's algorithm, taking the earliest-declared ready node first.
fn topo_sort(graph: &DiGraph<(), EdgeKind, u32>) -> Vec<u32> {
    let n = graph.node_count();
    let mut indegree = vec![0u32; n];
    for e in graph.edge_references() {
        indegree[e.target().index()] += 1;
    }
    let mut ready: BinaryHeap<Reverse<u32>> = (0..n as u32)
        .filter(|&i| indegree[i as usize] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for e in graph.edges_directed(NodeIndex::new(i as usize), Outgoing) {
            let t = e.target().index();
            indegree[t] -= 1;
            if indegree[t] == 0 {
                ready.push(Reverse(t as u32));
            }
        }
    }
    order
}

/// One cycle per strongly connected component that has one: the shortest cycle
/// through the component's alphabetically smallest member, following
/// "depends on" (downstream to upstream), neighbors tried in name order.
fn find_cycles(graph: &DiGraph<(), EdgeKind, u32>, manifest: &Manifest) -> Vec<GraphProblem> {
    let res = &manifest.resources;
    let name = |n: NodeIndex<u32>| res[n.index()].name.as_str();
    let mut comp = vec![usize::MAX; graph.node_count()];
    let mut cyclic = Vec::new();
    for (c, scc) in petgraph::algo::tarjan_scc(graph).into_iter().enumerate() {
        let is_cycle = scc.len() > 1 || graph.contains_edge(scc[0], scc[0]);
        for &n in &scc {
            comp[n.index()] = c;
        }
        if is_cycle {
            let start = *scc
                .iter()
                .min_by_key(|&&n| (name(n), n.index()))
                .unwrap_or(&scc[0]);
            cyclic.push((c, start));
        }
    }
    cyclic.sort_by_key(|&(_, start)| (name(start), start.index()));

    let mut problems = Vec::new();
    for (c, start) in cyclic {
        // Breadth-first search from `start` back to itself within the component.
        let mut parent: HashMap<NodeIndex<u32>, NodeIndex<u32>> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut last = None;
        'search: while let Some(n) = queue.pop_front() {
            let mut ups: Vec<NodeIndex<u32>> = graph
                .neighbors_directed(n, Incoming)
                .filter(|u| comp[u.index()] == c)
                .collect();
            ups.sort_by_key(|&u| (name(u), u.index()));
            ups.dedup();
            for u in ups {
                if u == start {
                    last = Some(n);
                    break 'search;
                }
                if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(u) {
                    e.insert(n);
                    queue.push_back(u);
                }
            }
        }
        let Some(mut n) = last else { continue };
        let mut members = vec![n];
        while n != start {
            n = parent[&n];
            members.push(n);
        }
        members.reverse();
        let mut path: Vec<String> = members.iter().map(|&m| name(m).to_owned()).collect();
        path.push(name(start).to_owned());
        let steps = members
            .iter()
            .enumerate()
            .map(|(k, &m)| {
                let up = members[(k + 1) % members.len()];
                let r = &res[m.index()];
                let upname = name(up);
                let kind = if r.resource_deps.iter().any(|d| d == upname) {
                    EdgeKind::Ordering
                } else {
                    EdgeKind::Data
                };
                (kind, r.defined_at.clone())
            })
            .collect::<Vec<_>>();
        let (kinds, at) = steps.into_iter().unzip();
        problems.push(GraphProblem::Cycle { path, kinds, at });
    }
    problems
}

/// How many names to list when no name is close to a missing one.
const LISTED_NAMES: usize = 5;

fn unknown_dep(manifest: &Manifest, i: usize, dep: &str, kind: EdgeKind) -> GraphProblem {
    let r = &manifest.resources[i];
    let others = manifest
        .resources
        .iter()
        .map(|o| o.name.as_str())
        .filter(|&o| o != r.name);
    let best = loop_lang::diag::closest(dep, others.clone());
    GraphProblem::UnknownDep {
        resource: r.name.clone(),
        dep: dep.to_owned(),
        kind,
        at: r.defined_at.clone(),
        suggestion: best.map(str::to_owned),
        known: others
            .clone()
            .take(LISTED_NAMES)
            .map(str::to_owned)
            .collect(),
        known_total: others.count(),
    }
}

/// One problem that makes a manifest's graph invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GraphProblem {
    /// A `resource_deps` or `data_deps` entry names no resource.
    UnknownDep {
        /// The resource whose dependency list holds the bad name.
        resource: String,
        /// The name that matches no resource.
        dep: String,
        kind: EdgeKind,
        /// Where `resource` was declared.
        at: Location,
        /// The closest existing name, when one is close.
        suggestion: Option<String>,
        /// The first few other resource names in declaration order.
        known: Vec<String>,
        /// How many other resources there are.
        known_total: usize,
    },
    /// Two resources share a name.
    DuplicateName {
        name: String,
        first: Location,
        second: Location,
    },
    /// A dependency cycle over either kind of edge.
    Cycle {
        /// `path[k]` depends on `path[k + 1]`; the last element repeats the first,
        /// which is the alphabetically smallest member.
        path: Vec<String>,
        /// The kind of the edge from `path[k]` to `path[k + 1]`.
        kinds: Vec<EdgeKind>,
        /// Where `path[k]` was declared.
        at: Vec<Location>,
    },
}

impl GraphProblem {
    /// The one-line message.
    pub fn message(&self) -> String {
        match self {
            GraphProblem::UnknownDep { resource, dep, .. } => {
                format!("resource `{resource}` depends on `{dep}`, which is not a resource")
            }
            GraphProblem::DuplicateName { name, .. } => {
                format!("two resources are named `{name}`")
            }
            GraphProblem::Cycle { path, .. } => format!("dependency cycle: {}", path.join(" -> ")),
        }
    }

    /// The full diagnostic: message, labelled locations and a hint.
    pub fn to_diagnostic(&self) -> Diagnostic {
        let diag = Diagnostic::new(self.message());
        match self {
            GraphProblem::UnknownDep {
                resource,
                dep,
                kind,
                at,
                suggestion,
                known,
                known_total,
            } => {
                let diag = diag.at(
                    at.clone(),
                    format!("`{dep}` is listed in the {} of `{resource}`", kind.field()),
                );
                let help = match suggestion {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if known.is_empty() => "there are no other resources".to_owned(),
                    None => {
                        let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
                        let more = known_total.saturating_sub(known.len());
                        let more = if more > 0 {
                            format!(" and {more} more")
                        } else {
                            String::new()
                        };
                        format!("existing resources include {}{more}", list.join(", "))
                    }
                };
                diag.help(help)
            }
            GraphProblem::DuplicateName { first, second, .. } => diag
                .at(second.clone(), "declared again here")
                .at(first.clone(), "first declared here")
                .help("resource names must be unique across all Loopfiles; rename one of them"),
            GraphProblem::Cycle { path, kinds, at } => {
                let mut diag = diag;
                for (k, loc) in at.iter().enumerate() {
                    let label = format!(
                        "`{}` depends on `{}` ({})",
                        path[k],
                        path[k + 1],
                        kinds[k].field()
                    );
                    diag = diag.at(loc.clone(), label);
                }
                diag.help("remove one of these dependencies to break the cycle")
            }
        }
    }
}

impl fmt::Display for GraphProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// Why a manifest has no valid graph: one or more problems (never empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphError {
    pub problems: Vec<GraphProblem>,
}

impl GraphError {
    /// One diagnostic per problem, in order.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        self.problems
            .iter()
            .map(GraphProblem::to_diagnostic)
            .collect()
    }
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.split_first() {
            None => f.write_str("invalid resource graph"),
            Some((first, [])) => write!(f, "{first}"),
            Some((first, rest)) => write!(f, "{first} (and {} more problems)", rest.len()),
        }
    }
}

impl std::error::Error for GraphError {}

/// Builders for resources and manifests in tests.
#[cfg(test)]
pub(crate) mod test_support {
    use loop_lang::model::{Manifest, Resource, ResourceKind};
    use loop_lang::Location;

    /// A local resource with nothing but a name, declared on line `line` of `Loopfile`.
    pub(crate) fn resource(name: &str, line: usize) -> Resource {
        let mut r = Resource::new(
            name,
            ResourceKind::Local,
            Location {
                file: "Loopfile".into(),
                line,
                col: 1,
                width: 14,
            },
        );
        r.dir = String::new();
        r
    }

    /// `(name, resource_deps, data_deps)` triples, declared one per line.
    pub(crate) fn manifest(spec: &[(&str, &[&str], &[&str])]) -> Manifest {
        let resources = spec
            .iter()
            .enumerate()
            .map(|(i, (name, ordering, data))| {
                let mut r = resource(name, i + 1);
                r.resource_deps = ordering.iter().map(|s| s.to_string()).collect();
                r.data_deps = data.iter().map(|s| s.to_string()).collect();
                r
            })
            .collect();
        Manifest {
            resources,
            ..Manifest::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::manifest;
    use super::*;

    fn graph(spec: &[(&str, &[&str], &[&str])]) -> Graph {
        Graph::build(&manifest(spec)).expect("valid graph")
    }

    fn problems(spec: &[(&str, &[&str], &[&str])]) -> Vec<GraphProblem> {
        Graph::build(&manifest(spec))
            .expect_err("invalid graph")
            .problems
    }

    #[test]
    fn topo_order_respects_both_kinds_and_breaks_ties_by_declaration() {
        let g = graph(&[
            ("web", &["db"], &[]),
            ("zeta", &[], &[]),
            ("api", &[], &["codegen"]),
            ("db", &[], &[]),
            ("codegen", &[], &[]),
            ("alpha", &[], &[]),
        ]);
        let order: Vec<&str> = g.topo_order().collect();
        assert_eq!(order, ["zeta", "db", "web", "codegen", "api", "alpha"]);
    }

    #[test]
    fn data_closure_follows_data_edges_only() {
        let g = graph(&[
            ("gen", &[], &[]),
            ("lib", &[], &["gen"]),
            ("app", &[], &["lib"]),
            ("waits", &["gen"], &[]),
            ("after_app", &["app"], &[]),
        ]);
        assert_eq!(g.data_downstream_closure(["gen"]), ["gen", "lib", "app"]);
        assert_eq!(
            g.data_downstream_closure(["lib", "waits", "nope"]),
            ["lib", "app", "waits"]
        );
        assert_eq!(g.data_downstream_closure(["after_app"]), ["after_app"]);
    }

    #[test]
    fn upstreams_and_edges_keep_declaration_order() {
        let g = graph(&[
            ("a", &[], &[]),
            ("b", &[], &[]),
            ("c", &["b", "a", "b"], &["a"]),
        ]);
        assert_eq!(g.ordering_upstreams("c"), ["b", "a"]);
        assert_eq!(
            g.upstreams("c"),
            [
                ("b", EdgeKind::Ordering),
                ("a", EdgeKind::Ordering),
                ("a", EdgeKind::Data)
            ]
        );
        assert_eq!(
            g.downstreams("a"),
            [("c", EdgeKind::Ordering), ("c", EdgeKind::Data)]
        );
        assert!(g.ordering_upstreams("missing").is_empty());
        let edges: Vec<String> = g
            .edges()
            .map(|e| format!("{} -{}-> {}", e.upstream, e.kind, e.downstream))
            .collect();
        assert_eq!(edges, ["b -ordering-> c", "a -ordering-> c", "a -data-> c"]);
    }

    #[test]
    fn unknown_dep_suggests_the_closest_name() {
        let p = problems(&[("api", &[], &[]), ("web", &["apii"], &[])]);
        assert_eq!(p.len(), 1);
        assert_eq!(
            p[0].message(),
            "resource `web` depends on `apii`, which is not a resource"
        );
        let d = p[0].to_diagnostic();
        assert_eq!(d.help.as_deref(), Some("did you mean `api`?"));
        assert_eq!(d.labels[0].at.line, 2);
        assert_eq!(
            d.labels[0].text,
            "`apii` is listed in the resource_deps of `web`"
        );
    }

    #[test]
    fn unknown_dep_lists_names_when_nothing_is_close() {
        let spec: Vec<(String, Vec<&str>)> = (0..8).map(|i| (format!("svc{i}"), vec![])).collect();
        let mut spec: Vec<(&str, &[&str], &[&str])> = spec
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice(), &[][..]))
            .collect();
        spec.push(("web", &[], &["database"]));
        let p = problems(&spec);
        let d = p[0].to_diagnostic();
        assert_eq!(
            d.help.as_deref(),
            Some("existing resources include `svc0`, `svc1`, `svc2`, `svc3`, `svc4` and 3 more")
        );
        assert!(d.labels[0].text.contains("data_deps"), "{:?}", d.labels);
    }

    #[test]
    fn every_unknown_dep_is_reported_in_declaration_order() {
        let p = problems(&[("a", &["x"], &["y"]), ("b", &["z"], &[])]);
        let deps: Vec<&str> = p
            .iter()
            .map(|p| match p {
                GraphProblem::UnknownDep { dep, .. } => dep.as_str(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(deps, ["x", "y", "z"]);
    }

    #[test]
    fn cycle_path_starts_at_the_smallest_member() {
        let p = problems(&[
            ("c", &["a"], &[]),
            ("b", &[], &["c"]),
            ("a", &["b"], &[]),
            ("d", &["c"], &[]),
        ]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].message(), "dependency cycle: a -> b -> c -> a");
        let d = p[0].to_diagnostic();
        let labels: Vec<(usize, &str)> = d
            .labels
            .iter()
            .map(|l| (l.at.line, l.text.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                (3, "`a` depends on `b` (resource_deps)"),
                (2, "`b` depends on `c` (data_deps)"),
                (1, "`c` depends on `a` (resource_deps)"),
            ]
        );
    }

    #[test]
    fn self_dependency_and_separate_cycles_are_all_reported() {
        let p = problems(&[("z", &["y"], &[]), ("y", &["z"], &[]), ("m", &[], &["m"])]);
        let messages: Vec<String> = p.iter().map(GraphProblem::message).collect();
        assert_eq!(
            messages,
            ["dependency cycle: m -> m", "dependency cycle: y -> z -> y"]
        );
        let err = GraphError { problems: p };
        assert_eq!(
            err.to_string(),
            "dependency cycle: m -> m (and 1 more problems)"
        );
    }

    #[test]
    fn duplicate_names_are_an_error() {
        let p = problems(&[("a", &[], &[]), ("a", &[], &[])]);
        assert_eq!(p[0].message(), "two resources are named `a`");
        assert_eq!(p[0].to_diagnostic().labels.len(), 2);
    }
}
