//! One parsed module: its `const`s, other bindings, imports (resolved to files), exports and
//! entry calls (`defineAgent(...)`), collected from the top-level statements oxc parsed.
//! Only the top level matters: nothing is executed, so function bodies are never looked at.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use oxc_allocator::Allocator;
use oxc_ast::ast::{
    BindingPattern, Declaration, Expression, ImportDeclarationSpecifier, ModuleExportName, Program, Statement,
    VariableDeclaration, VariableDeclarationKind,
};
use oxc_parser::Parser;
use oxc_span::{GetSpan, SourceType, Span};

use crate::error::{Loc, Problem};
use crate::value::{Kind, Node};

/// The extensions tried, in order, for an import like `./prompts`.
pub(crate) const MODULE_EXTENSIONS: [&str; 4] = ["ts", "mts", "js", "mjs"];

/// Where an imported binding comes from.
#[derive(Debug)]
pub(crate) enum ImportTarget {
    /// A bare specifier (`@runtools/sdk`): never evaluated.
    Package,
    /// A relative specifier that resolves to no file (already reported).
    Missing,
    File(PathBuf),
}

#[derive(Debug)]
pub(crate) struct Import<'a> {
    /// The exported name (`default` for default imports, `*` for namespaces).
    pub imported: String,
    pub specifier: &'a str,
    pub span: Span,
    pub target: Rc<ImportTarget>,
}

/// How a module exports a name.
#[derive(Debug)]
pub(crate) enum Export<'a> {
    Local(&'a str, Span),
    Default(&'a Expression<'a>),
}

/// One parsed module's bindings.
#[derive(Debug)]
pub(crate) struct Module<'a> {
    pub display: PathBuf,
    pub source: &'a str,
    pub consts: HashMap<&'a str, &'a Expression<'a>>,
    /// Bindings that are not evaluable `const`s, with what they are (`let`, a function…).
    pub others: HashMap<&'a str, &'static str>,
    pub imports: HashMap<&'a str, Import<'a>>,
    pub exports: Vec<(String, Export<'a>)>,
    /// `defineAgent(...)`/`defineConfig(...)` calls and default-exported object literals.
    pub entries: Vec<&'a Expression<'a>>,
}

impl<'a> Module<'a> {
    pub fn loc(&self, span: Span) -> Loc {
        Loc::at(&self.display, self.source, span.start)
    }

    pub fn invalid(&self, span: Span, out: &mut Vec<Problem>, message: impl Into<String>) -> Node {
        out.push(Problem::new(self.loc(span), message));
        Node { loc: self.loc(span), kind: Kind::Invalid }
    }
}

/// Parses `source`; syntax errors go to `out` (with their positions) and give `None`.
pub(crate) fn parse<'a>(
    allocator: &'a Allocator,
    source: &'a str,
    path: &Path,
    display: &Path,
    out: &mut Vec<Problem>,
) -> Option<&'a Program<'a>> {
    let source_type = SourceType::from_path(path).unwrap_or_else(|_| SourceType::ts());
    let parsed = Parser::new(allocator, source, source_type).parse();
    let before = out.len();
    for diagnostic in parsed.diagnostics.errors() {
        let offset = diagnostic.labels.first().map_or(0, |label| label.offset());
        out.push(Problem::new(Loc::at(display, source, offset), format!("syntax error: {}", diagnostic.message)));
    }
    if parsed.panicked && out.len() == before {
        out.push(Problem::new(Loc::start_of(display), "syntax error: the file could not be parsed"));
    }
    (out.len() == before).then(|| &*allocator.alloc(parsed.program))
}

/// Whether `expression` is a call to `callee`.
pub(crate) fn is_call_to(expression: &Expression<'_>, callee: &str) -> bool {
    matches!(unwrap_expression(expression), Expression::CallExpression(call)
        if matches!(&call.callee, Expression::Identifier(identifier) if identifier.name.as_str() == callee))
}

/// Unwraps `( )`, `as`, `satisfies` and `!` around an expression.
pub(crate) fn unwrap_expression<'b, 'a>(expression: &'b Expression<'a>) -> &'b Expression<'a> {
    match expression {
        Expression::ParenthesizedExpression(inner) => unwrap_expression(&inner.expression),
        Expression::TSAsExpression(inner) => unwrap_expression(&inner.expression),
        Expression::TSSatisfiesExpression(inner) => unwrap_expression(&inner.expression),
        Expression::TSNonNullExpression(inner) => unwrap_expression(&inner.expression),
        _ => expression,
    }
}

/// Collects a module's bindings, imports, exports and (when `callee` is not empty) entry calls.
/// Relative imports that resolve to no file are reported here.
pub(crate) fn scan<'a>(
    program: &'a Program<'a>,
    path: &Path,
    display: PathBuf,
    source: &'a str,
    callee: &str,
    out: &mut Vec<Problem>,
) -> Module<'a> {
    let mut module = Module {
        display,
        source,
        consts: HashMap::new(),
        others: HashMap::new(),
        imports: HashMap::new(),
        exports: Vec::new(),
        entries: Vec::new(),
    };
    let directory = path.parent().unwrap_or(Path::new("."));
    for statement in &program.body {
        match statement {
            Statement::ImportDeclaration(import) => {
                if import.import_kind.is_type() {
                    continue;
                }
                let specifier = import.source.value.as_str();
                let target = if specifier.starts_with("./") || specifier.starts_with("../") {
                    match resolve_import(directory, specifier) {
                        Some(file) => ImportTarget::File(file),
                        None => {
                            let tried = MODULE_EXTENSIONS
                                .iter()
                                .map(|extension| format!("{specifier}.{extension}"))
                                .chain(std::iter::once(format!("{specifier}/index.ts")))
                                .collect::<Vec<_>>()
                                .join(", ");
                            out.push(Problem::new(
                                module.loc(import.source.span),
                                format!("cannot find module `{specifier}` (tried {tried})"),
                            ));
                            ImportTarget::Missing
                        }
                    }
                } else {
                    ImportTarget::Package
                };
                let target = Rc::new(target);
                for specifier_node in import.specifiers.iter().flatten() {
                    let (imported, local, span) = match specifier_node {
                        ImportDeclarationSpecifier::ImportSpecifier(named) => {
                            if named.import_kind.is_type() {
                                continue;
                            }
                            (export_name(&named.imported), named.local.name.as_str(), named.span)
                        }
                        ImportDeclarationSpecifier::ImportDefaultSpecifier(default) => {
                            ("default".to_owned(), default.local.name.as_str(), default.span)
                        }
                        ImportDeclarationSpecifier::ImportNamespaceSpecifier(namespace) => {
                            ("*".to_owned(), namespace.local.name.as_str(), namespace.span)
                        }
                    };
                    module.imports.insert(local, Import { imported, specifier, span, target: Rc::clone(&target) });
                }
            }
            Statement::VariableDeclaration(declaration) => {
                record_variables(&mut module, declaration, false, callee);
            }
            Statement::ExportDeclaration(export) => match &export.declaration {
                Declaration::VariableDeclaration(declaration) => {
                    record_variables(&mut module, declaration, true, callee);
                }
                Declaration::FunctionDeclaration(function) => {
                    if let Some(id) = &function.id {
                        module.others.insert(id.name.as_str(), "a function");
                    }
                }
                Declaration::ClassDeclaration(class) => {
                    if let Some(id) = &class.id {
                        module.others.insert(id.name.as_str(), "a class");
                    }
                }
                _ => {}
            },
            Statement::FunctionDeclaration(function) => {
                if let Some(id) = &function.id {
                    module.others.insert(id.name.as_str(), "a function");
                }
            }
            Statement::ClassDeclaration(class) => {
                if let Some(id) = &class.id {
                    module.others.insert(id.name.as_str(), "a class");
                }
            }
            Statement::ExportNamedDeclaration(export) => {
                if export.export_kind.is_type() {
                    continue;
                }
                for specifier in &export.specifiers {
                    if let ModuleExportName::IdentifierReference(local) = &specifier.local {
                        module.exports.push((
                            export_name(&specifier.exported),
                            Export::Local(local.name.as_str(), specifier.span),
                        ));
                    }
                }
            }
            Statement::ExportDefaultDeclaration(export) => {
                if let Some(expression) = export.declaration.as_expression() {
                    module.exports.push(("default".to_owned(), Export::Default(expression)));
                    let inner = unwrap_expression(expression);
                    if !callee.is_empty() {
                        match inner {
                            Expression::ObjectExpression(_) => module.entries.push(inner),
                            _ if is_call_to(inner, callee) => module.entries.push(inner),
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    module.entries.sort_by_key(|entry| entry.span().start);
    module
}

/// Records `const`s (evaluable) and other variables of one declaration.
pub(crate) fn record_variables<'a>(
    module: &mut Module<'a>,
    declaration: &'a VariableDeclaration<'a>,
    exported: bool,
    callee: &str,
) {
    for declarator in &declaration.declarations {
        let BindingPattern::BindingIdentifier(id) = &declarator.id else {
            for id in declarator.id.get_binding_identifiers() {
                module.others.insert(id.name.as_str(), "a destructured binding");
            }
            continue;
        };
        let name = id.name.as_str();
        match (&declaration.kind, &declarator.init) {
            (VariableDeclarationKind::Const, Some(init)) => {
                if !callee.is_empty() && is_call_to(init, callee) {
                    module.entries.push(unwrap_expression(init));
                } else {
                    module.consts.insert(name, init);
                }
            }
            (VariableDeclarationKind::Let, _) => {
                module.others.insert(name, "declared with `let`");
            }
            (VariableDeclarationKind::Var, _) => {
                module.others.insert(name, "declared with `var`");
            }
            _ => {
                module.others.insert(name, "not a plain `const`");
            }
        }
        if exported {
            module.exports.push((name.to_owned(), Export::Local(name, id.span)));
        }
    }
}

pub(crate) fn export_name(name: &ModuleExportName<'_>) -> String {
    match name {
        ModuleExportName::IdentifierName(identifier) => identifier.name.as_str().to_owned(),
        ModuleExportName::IdentifierReference(identifier) => identifier.name.as_str().to_owned(),
        ModuleExportName::StringLiteral(literal) => literal.value.as_str().to_owned(),
    }
}

/// Resolves a relative import like `./prompts` from `directory`: the exact file, then
/// `./prompts.{ts,mts,js,mjs}`, then `./prompts/index.{ts,mts,js,mjs}`; `./x.js` also finds
/// `./x.ts` (TypeScript's convention).
pub(crate) fn resolve_import(directory: &Path, specifier: &str) -> Option<PathBuf> {
    let base = normalize(&directory.join(specifier));
    let mut candidates = vec![base.clone()];
    if let Some(stem) = specifier.strip_suffix(".js").or_else(|| specifier.strip_suffix(".mjs")) {
        let stem = normalize(&directory.join(stem));
        candidates.extend(["ts", "mts"].iter().map(|extension| stem.with_extension(extension)));
    }
    let file_name = base.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    candidates
        .extend(MODULE_EXTENSIONS.iter().map(|extension| base.with_file_name(format!("{file_name}.{extension}"))));
    candidates.extend(MODULE_EXTENSIONS.iter().map(|extension| base.join(format!("index.{extension}"))));
    candidates.into_iter().find(|candidate| candidate.is_file())
}

/// Removes `.` and folds `..` lexically, so one file has one cache key.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !normal.pop() {
                    normal.push("..");
                }
            }
            other => normal.push(other),
        }
    }
    normal
}
