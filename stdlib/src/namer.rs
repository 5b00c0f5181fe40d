//! `workload_to_resource_function`: after evaluation, the user's function is
//! called once per Kubernetes workload, and its answers name their resources.

use std::cell::RefCell;

use anyhow::anyhow;
use loop_lang::data::Data;
use loop_lang::{Diagnostic, Loader};
use starlark::environment::Module;
use starlark::eval::Evaluator;
use starlark::values::structs::AllocStruct;

use crate::builtins::tilt::WORKLOAD_NAMER;
use crate::decls::Declarations;

/// Calls the naming function (if one was set) for every workload declared, and
/// records the names in the declarations.
pub fn name_workloads(loader: &Loader) -> Result<(), Diagnostic> {
    let decls = loader.state::<RefCell<Declarations>>();
    let Some((file, at)) = decls.borrow().workload_namer.clone() else {
        return Ok(());
    };
    let fail =
        |message: String| Diagnostic::new(message).at(at.clone(), "the function is set here");
    let function = loader
        .module(&file)
        .and_then(|m| m.get(WORKLOAD_NAMER).ok())
        .ok_or_else(|| fail("workload_to_resource_function: the function is gone".to_owned()))?;
    let workloads: Vec<(String, String, Option<String>, String)> = decls
        .borrow()
        .objects
        .iter()
        .filter(|o| loop_lang::workload::is_workload(&o.body))
        .map(|o| {
            let text = |path: &[&str]| o.body.path(path).and_then(Data::as_str).map(str::to_owned);
            (
                text(&["kind"]).unwrap_or_default(),
                text(&["metadata", "name"]).unwrap_or_default(),
                text(&["metadata", "namespace"]),
                text(&["apiVersion"]).unwrap_or_default(),
            )
        })
        .collect();
    let mut names = Vec::new();
    Module::with_temp_heap(|module| {
        module.frozen_heap().add_reference(function.owner());
        // SAFETY: the function's heap was added as a reference of this module's
        // frozen heap above, so the value lives as long as this module.
        let function = unsafe { function.unchecked_frozen_value() }.to_value();
        let mut eval = Evaluator::new(&module);
        let heap = module.heap();
        for (kind, name, namespace, api_version) in &workloads {
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            let id = heap.alloc(AllocStruct([
                ("name", heap.alloc(name.as_str())),
                ("kind", heap.alloc(kind.as_str())),
                ("namespace", heap.alloc(namespace.as_deref().unwrap_or(""))),
                ("group", heap.alloc(group)),
            ]));
            let what = format!("{kind}/{name}");
            let result = eval
                .eval_function(function, &[id], &[])
                .map_err(|e| anyhow!("{e}"))
                .and_then(|v| {
                    v.unpack_str().map(str::to_owned).ok_or_else(|| {
                        anyhow!("it returned {}, not a string", crate::values::describe(v))
                    })
                });
            match result {
                Ok(resource) if !resource.is_empty() => {
                    names.push(((kind.clone(), name.clone(), namespace.clone()), resource))
                }
                Ok(_) => {
                    return Err(fail(format!(
                        "workload_to_resource_function: the name for {what} is empty"
                    )))
                }
                Err(e) => {
                    return Err(fail(format!(
                        "workload_to_resource_function: naming {what} failed: {e}"
                    )))
                }
            }
        }
        Ok(())
    })?;
    decls.borrow_mut().workload_names.extend(names);
    Ok(())
}
