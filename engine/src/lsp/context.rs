//! What `starlark_lsp` needs from its host: parsing in our dialect, `load()`
//! resolution by the loader's own rules, file paths in string literals, and
//! the built-ins with their documentation (from the same `Globals` that define
//! them, so completion and hover never drift from the real signatures).
//!
//! Diagnostics are not produced here: [`super::check`] evaluates the whole
//! composition as `loop check` does, and the front end publishes them.

use std::path::{Path, PathBuf};

use loop_lang::Project;
use starlark::docs::DocModule;
use starlark::syntax::AstModule;
use starlark_lsp::server::{LspContext, LspEvalResult, LspUri, StringLiteralResult};

/// The host of the Starlark language server.
pub struct LoopContext {
    builtins: DocModule,
}

impl LoopContext {
    pub fn new() -> LoopContext {
        LoopContext {
            builtins: loop_stdlib::globals().documentation(),
        }
    }
}

impl Default for LoopContext {
    fn default() -> Self {
        Self::new()
    }
}

/// The project a file belongs to, and the folder relative paths start from.
fn project_of(file: &Path) -> Result<(Project, PathBuf), String> {
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let project = super::project_of(file)?;
    Ok((project, dir))
}

fn file_of(uri: &LspUri) -> Result<&Path, String> {
    match uri {
        LspUri::File(path) => Ok(path),
        other => Err(format!("`{other}` is not a file")),
    }
}

impl LspContext for LoopContext {
    fn parse_file_with_contents(&self, uri: &LspUri, content: String) -> LspEvalResult {
        let name = uri.path().to_string_lossy();
        // The parser recurses per nesting level: a text nested too deep (which the
        // diagnostics report) is not parsed here at all.
        let content = loop_lang::tabs::expand(&content).unwrap_or(content);
        // `while` loops, as a form that keeps every position (see `while_loops`).
        let content = loop_lang::while_loops::for_editors(&content).unwrap_or(content);
        let ast = loop_lang::nesting::check(&content)
            .ok()
            .and_then(|()| AstModule::parse(&name, content, &loop_lang::loader::dialect()).ok());
        LspEvalResult {
            diagnostics: Vec::new(),
            ast,
        }
    }

    fn resolve_load(
        &self,
        path: &str,
        current_file: &LspUri,
        _workspace_root: Option<&Path>,
    ) -> Result<LspUri, String> {
        let (project, dir) = project_of(file_of(current_file)?)?;
        project.resolve_module(&dir, path).map(LspUri::File)
    }

    fn render_as_load(
        &self,
        target: &LspUri,
        current_file: &LspUri,
        _workspace_root: Option<&Path>,
    ) -> Result<String, String> {
        let target = file_of(target)?;
        let (project, dir) = project_of(file_of(current_file)?)?;
        if let Ok(rest) = target.strip_prefix(&dir) {
            return Ok(loop_lang::project::slash(rest));
        }
        match target.strip_prefix(&project.root) {
            Ok(rest) => Ok(format!("//{}", loop_lang::project::slash(rest))),
            Err(_) => Err(format!("{} is outside the project", target.display())),
        }
    }

    /// A string naming an existing file (`include("svc/Loopfile")`,
    /// `read_file("//cfg.yaml")`) leads to that file.
    fn resolve_string_literal(
        &self,
        literal: &str,
        current_file: &LspUri,
        _workspace_root: Option<&Path>,
    ) -> Result<Option<StringLiteralResult>, String> {
        let (project, dir) = project_of(file_of(current_file)?)?;
        if literal.is_empty() || literal.contains("://") {
            return Ok(None);
        }
        let path = match literal.strip_prefix("//") {
            Some(rest) => project.root.join(rest),
            None => project.resolve_path(&dir, literal),
        };
        Ok(path.is_file().then(|| StringLiteralResult {
            uri: LspUri::File(path),
            location_finder: None,
        }))
    }

    fn get_load_contents(&self, uri: &LspUri) -> Result<Option<String>, String> {
        match uri {
            LspUri::File(path) => Ok(loop_lang::project::read_text(path).ok()),
            _ => Ok(None),
        }
    }

    fn get_environment(&self, _uri: &LspUri) -> DocModule {
        self.builtins.clone()
    }

    fn get_uri_for_global_symbol(
        &self,
        _current_file: &LspUri,
        _symbol: &str,
    ) -> Result<Option<LspUri>, String> {
        Ok(None)
    }
}
