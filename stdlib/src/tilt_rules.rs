//! Two rules Tilt applies to the assembled resources, which `loop` applies the
//! same way so that a Tiltfile gives the same graph:
//!
//! * a port-forward without a container port takes one from the workload's
//!   declared container ports (Tilt's `populateContainerPorts`);
//! * a `resource_deps` entry that names no resource is dropped with a warning
//!   (Tilt: "dependency ignored"), where `loop`'s own `data_deps` stay an error.

use std::collections::BTreeSet;

use loop_lang::data::Data;
use loop_lang::loader::LogLine;
use loop_lang::model::{Manifest, Resource};
use loop_lang::workload;

/// A port-forward without a container port (0) gets one as in Tilt: the local
/// port when the workload's containers declare it, else the first port they
/// declare, else the local port. A custom deploy's stays 0 (but to a
/// Service): its pod decides when the forward connects.
pub fn resolve_container_ports(resource: &mut Resource) {
    if resource.port_forwards.iter().all(|p| p.container_port != 0) {
        return;
    }
    let mut declared: Vec<u16> = Vec::new();
    for object in &resource.objects {
        let Some(spec) = workload::pod_spec(&object.body) else {
            continue;
        };
        for container in spec
            .get("containers")
            .map(Data::as_list)
            .unwrap_or_default()
        {
            for port in container
                .get("ports")
                .map(Data::as_list)
                .unwrap_or_default()
            {
                if let Some(Data::Int(p)) = port.get("containerPort") {
                    declared.extend(u16::try_from(*p).ok());
                }
            }
        }
    }
    // A custom deploy's objects are known once apply_cmd runs: its pod's port
    // is chosen then, by the same rule (`k8s::portforward::pod_port`).
    let objects_known = resource.custom_deploy.is_none();
    for forward in &mut resource.port_forwards {
        if forward.container_port == 0 {
            // To a Service, the port is the Service's, which the pods do not declare.
            if forward.service.is_some() || declared.contains(&forward.local_port) {
                forward.container_port = forward.local_port;
            } else if objects_known {
                forward.container_port = declared.first().copied().unwrap_or(forward.local_port);
            }
        }
    }
}

/// Drops the `resource_deps` entries that name no resource, each with a warning
/// in the evaluation log at the file that declared the resource.
pub fn drop_unknown_resource_deps(manifest: &mut Manifest, log: &mut Vec<LogLine>) {
    let names: BTreeSet<String> = manifest.resources.iter().map(|r| r.name.clone()).collect();
    for resource in &mut manifest.resources {
        let name = resource.name.clone();
        let file = resource.defined_at.file.clone();
        resource.resource_deps.retain(|dep| {
            let known = names.contains(dep) && *dep != name;
            if !known && *dep != name {
                let hint = loop_lang::diag::closest(dep, names.iter().map(String::as_str))
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                log.push(LogLine {
                    file: file.clone(),
                    warning: true,
                    text: format!(
                        "resource `{name}` lists `{dep}` in resource_deps, which is not a resource; the dependency is ignored, as in Tilt{hint}"
                    ),
                });
            }
            known || *dep == name
        });
    }
}
