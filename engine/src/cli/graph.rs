//! `loop graph`: the resource graph as text, JSON or Graphviz dot.

use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use loop_stdlib::EvalOptions;

use loop_lang::model::Manifest;

use super::GraphFormat;
use crate::graph::{EdgeKind, Graph};
use crate::load::load;

pub fn run(
    files: &[PathBuf],
    options: &EvalOptions,
    format: GraphFormat,
) -> anyhow::Result<ExitCode> {
    let Some(loaded) = load(files, options) else {
        return Ok(ExitCode::FAILURE);
    };
    let manifest = &loaded.evaluation.manifest;
    let out = match format {
        // Object bodies are part of it: Secret values are replaced, as in logs.
        GraphFormat::Json => {
            let json = serde_json::to_string_pretty(manifest)? + "\n";
            match crate::run::secrets::Scrubber::of(manifest) {
                Some(scrubber) => scrubber.scrub(&json),
                None => json,
            }
        }
        GraphFormat::Text => text(manifest, &loaded.graph),
        GraphFormat::Dot => dot(manifest, &loaded.graph),
    };
    crate::report::out(&out);
    Ok(ExitCode::SUCCESS)
}

/// One block per resource, in run order.
pub fn text(manifest: &Manifest, graph: &Graph) -> String {
    let mut out = String::new();
    for name in graph.topo_order() {
        let Some(r) = manifest.resource(name) else {
            continue;
        };
        let kind = serde_json::to_value(r.kind)
            .ok()
            .and_then(|k| k.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(out, "{} ({kind}) {}", r.name, r.defined_at);
        let mut line = |label: &str, items: &[String]| {
            if !items.is_empty() {
                let _ = writeln!(out, "  {label}: {}", items.join(", "));
            }
        };
        let upstream = |kind: EdgeKind| -> Vec<String> {
            graph
                .upstreams(name)
                .into_iter()
                .filter(|(_, k)| *k == kind)
                .map(|(n, _)| n.to_owned())
                .collect()
        };
        line("after", &upstream(EdgeKind::Ordering));
        line("re-runs with", &upstream(EdgeKind::Data));
        line("images", &r.images);
        line("deps", &r.deps);
        line("ignore", &r.ignore);
        let objects: Vec<String> = r
            .objects
            .iter()
            .map(|o| format!("{}/{}", o.kind, o.name))
            .collect();
        line("objects", &objects);
        if let Some(cmd) = &r.cmd {
            line("cmd", &[cmd.display()]);
        }
        if let Some(cmd) = &r.serve_cmd {
            line("serve_cmd", &[cmd.display()]);
        }
    }
    for image in &manifest.images {
        let _ = writeln!(out, "image {} {}", image.image_ref, image.defined_at);
        let _ = writeln!(out, "  deps: {}", image.deps.join(", "));
    }
    out
}

/// Graphviz: solid arrows are data edges, dashed ones ordering edges; images are boxes.
pub fn dot(manifest: &Manifest, graph: &Graph) -> String {
    let mut out = String::from("digraph loop {\n  rankdir=LR;\n");
    for name in graph.topo_order() {
        let _ = writeln!(out, "  {};", quote(name));
    }
    for image in &manifest.images {
        let _ = writeln!(
            out,
            "  {} [shape=box];",
            quote(&format!("image:{}", image.image_ref))
        );
    }
    for edge in graph.edges() {
        let style = match edge.kind {
            EdgeKind::Ordering => " [style=dashed]",
            EdgeKind::Data => "",
        };
        let _ = writeln!(
            out,
            "  {} -> {}{style};",
            quote(edge.upstream),
            quote(edge.downstream)
        );
    }
    for r in &manifest.resources {
        for image in &r.images {
            let _ = writeln!(
                out,
                "  {} -> {};",
                quote(&format!("image:{image}")),
                quote(&r.name)
            );
        }
    }
    out.push_str("}\n");
    out
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
