//! Static evaluation of TypeScript/JavaScript agent files: parse with oxc, find the
//! `defineAgent({...})` call, and compute its argument from literals, `const`s, relative
//! imports and `process.env` — without executing anything.
//!
//! Imported modules are loaded once per project: every exported `const` is evaluated and its
//! value (or its problems) cached, so a problem in a shared `prompts.ts` is reported once, and
//! only when something uses it. Import cycles (a module imported while it is still being
//! loaded) are errors. A failed sub-expression evaluates to [`Kind::Invalid`], so evaluation
//! carries on and every problem in a file is reported, without follow-up noise.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use oxc_allocator::Allocator;
use oxc_ast::ast::{
    ArrayExpressionElement, BinaryOperator, Expression, LogicalOperator, ObjectPropertyKind, PropertyKey, PropertyKind,
    UnaryOperator,
};
use oxc_span::{GetSpan, Span};

use crate::error::{Loc, Problem};
use crate::module::{Export, ImportTarget, Module, parse, scan};
use crate::value::{Kind, Node, Property, number_to_string, set_property};

/// Reads an environment variable for `process.env.NAME`.
pub(crate) type EnvLookup<'e> = &'e dyn Fn(&str) -> Option<String>;

/// What static evaluation understands, appended to "cannot evaluate" messages.
pub(crate) const SUPPORTED: &str = "supported: string, number, boolean and null literals, template literals, arrays, \
     objects, `+` concatenation, `as const`/`satisfies`, `const` identifiers (declared in the file or imported from a \
     relative file like './prompts') and `process.env.NAME` (optionally `?? 'fallback'`)";

/// Loads and evaluates modules for one project, caching imported modules.
pub(crate) struct Loader<'e> {
    root: PathBuf,
    env: EnvLookup<'e>,
    modules: HashMap<PathBuf, Rc<LoadedModule>>,
    /// Modules being loaded, outermost first: importing one of these again is a cycle.
    loading: Vec<PathBuf>,
    /// `(module, export)` whose problems were already reported (`""` for the module's own).
    reported: HashSet<(PathBuf, String)>,
}

impl std::fmt::Debug for Loader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader").field("root", &self.root).field("loading", &self.loading).finish_non_exhaustive()
    }
}

/// An imported module's exports, evaluated.
#[derive(Debug, Default)]
struct LoadedModule {
    problems: Vec<Problem>,
    exports: HashMap<String, Result<Node, Vec<Problem>>>,
}

impl<'e> Loader<'e> {
    pub(crate) fn new(root: &Path, env: EnvLookup<'e>) -> Self {
        Self { root: root.to_path_buf(), env, modules: HashMap::new(), loading: Vec::new(), reported: HashSet::new() }
    }

    /// `path` relative to the project directory, for messages.
    pub(crate) fn display(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.root).map_or_else(|_| path.to_path_buf(), Path::to_path_buf)
    }

    /// Evaluates the argument of the one `<callee>({...})` call (or default-exported object
    /// literal) in the file at `path`. Problems go to `out`; `None` when there is no such value.
    pub(crate) fn load_entry(&mut self, path: &Path, callee: &str, out: &mut Vec<Problem>) -> Option<Node> {
        let display = self.display(path);
        let source = match std::fs::read_to_string(path) {
            Ok(source) => source,
            Err(error) => {
                out.push(Problem::new(Loc::start_of(&display), format!("cannot read the file: {error}")));
                return None;
            }
        };
        let allocator = Allocator::default();
        let program = parse(&allocator, &source, path, &display, out)?;
        let module = scan(program, path, display, &source, callee, out);
        let what = if callee == "defineAgent" { "agent" } else { "config" };
        let Some((first, rest)) = module.entries.split_first() else {
            out.push(Problem::new(
                Loc::start_of(&module.display),
                format!(
                    "no {what} found: expected `export default {callee}({{...}})` or `export const {what} = {callee}({{...}})`"
                ),
            ));
            return None;
        };
        for extra in rest {
            out.push(Problem::new(
                module.loc(extra.span()),
                format!("only one {what} per file: another `{callee}` is at line {}", module.loc(first.span()).line),
            ));
        }
        let argument = match first.without_parentheses() {
            Expression::CallExpression(call) => match call.arguments.as_slice() {
                [argument] if argument.as_expression().is_some() => argument.as_expression(),
                _ => {
                    out.push(Problem::new(module.loc(call.span), format!("`{callee}` takes one object argument")));
                    return None;
                }
            },
            other => Some(other),
        }?;
        self.loading.push(path.to_path_buf());
        let value = self.eval(&module, argument, out, &mut Vec::new());
        self.loading.pop();
        Some(value)
    }

    /// Loads (or returns the cached) module at `path`, evaluating every export.
    fn load_module(&mut self, path: &Path) -> Rc<LoadedModule> {
        if let Some(module) = self.modules.get(path) {
            return Rc::clone(module);
        }
        let display = self.display(path);
        let mut loaded = LoadedModule::default();
        match std::fs::read_to_string(path) {
            Err(error) => {
                loaded.problems.push(Problem::new(Loc::start_of(&display), format!("cannot read the file: {error}")))
            }
            Ok(source) => {
                let allocator = Allocator::default();
                if let Some(program) = parse(&allocator, &source, path, &display, &mut loaded.problems) {
                    let module = scan(program, path, display, &source, "", &mut loaded.problems);
                    self.loading.push(path.to_path_buf());
                    for (name, export) in &module.exports {
                        let mut problems = Vec::new();
                        let value = match export {
                            Export::Local(local, span) => {
                                self.identifier(&module, local, *span, &mut problems, &mut Vec::new())
                            }
                            Export::Default(expression) => {
                                self.eval(&module, expression, &mut problems, &mut Vec::new())
                            }
                        };
                        let result = if problems.is_empty() { Ok(value) } else { Err(problems) };
                        loaded.exports.insert(name.clone(), result);
                    }
                    self.loading.pop();
                }
            }
        }
        let loaded = Rc::new(loaded);
        self.modules.insert(path.to_path_buf(), Rc::clone(&loaded));
        loaded
    }

    /// The value of `name` exported by `path`, imported at `import`.
    fn imported(&mut self, path: &Path, name: &str, import_loc: Loc, out: &mut Vec<Problem>) -> Node {
        let invalid = |loc: Loc| Node { loc, kind: Kind::Invalid };
        if !self.modules.contains_key(path)
            && let Some(start) = self.loading.iter().position(|loading| loading == path)
        {
            let mut chain: Vec<String> =
                self.loading[start..].iter().map(|module| self.display(module).display().to_string()).collect();
            chain.push(self.display(path).display().to_string());
            out.push(Problem::new(
                import_loc.clone(),
                format!("import cycle: {}; static evaluation needs imports to form a tree", chain.join(" → ")),
            ));
            return invalid(import_loc);
        }
        let module = self.load_module(path);
        if self.reported.insert((path.to_path_buf(), String::new())) {
            out.extend(module.problems.iter().cloned());
        }
        match module.exports.get(name) {
            Some(Ok(value)) => value.clone(),
            Some(Err(problems)) => {
                if self.reported.insert((path.to_path_buf(), name.to_owned())) {
                    out.extend(problems.iter().cloned());
                }
                invalid(import_loc)
            }
            None => {
                if module.problems.is_empty() {
                    let display = self.display(path);
                    out.push(Problem::new(
                        import_loc.clone(),
                        format!("`{}` has no exported const `{name}`", display.display()),
                    ));
                }
                invalid(import_loc)
            }
        }
    }

    /// The value of identifier `name`, used at `span` in `module`.
    fn identifier<'a>(
        &mut self,
        module: &Module<'a>,
        name: &'a str,
        span: Span,
        out: &mut Vec<Problem>,
        evaluating: &mut Vec<&'a str>,
    ) -> Node {
        if evaluating.contains(&name) {
            return module.invalid(span, out, format!("`{name}` refers to itself"));
        }
        if let Some(init) = module.consts.get(name) {
            evaluating.push(name);
            let value = self.eval(module, init, out, evaluating);
            evaluating.pop();
            return value;
        }
        if let Some(import) = module.imports.get(name) {
            let import_loc = module.loc(import.span);
            return match import.target.as_ref() {
                ImportTarget::Missing => Node { loc: import_loc, kind: Kind::Invalid },
                ImportTarget::Package => module.invalid(
                    span,
                    out,
                    format!(
                        "`{name}` is imported from the package `{}`; only `const`s imported from relative files \
                         (like './prompts') can be evaluated statically",
                        import.specifier
                    ),
                ),
                ImportTarget::File(_) if import.imported == "*" => module.invalid(
                    span,
                    out,
                    format!("namespace imports (`import * as {name}`) are not supported; import the names you need"),
                ),
                ImportTarget::File(path) => self.imported(path, &import.imported, import_loc, out),
            };
        }
        let message = match module.others.get(name) {
            Some(what) => format!("`{name}` is {what}; only `const` bindings can be evaluated statically"),
            None => format!("unknown identifier `{name}`: not a `const` in this file or a named import"),
        };
        module.invalid(span, out, message)
    }

    /// Evaluates `expression`; problems go to `out` and give [`Kind::Invalid`].
    fn eval<'a>(
        &mut self,
        module: &Module<'a>,
        expression: &'a Expression<'a>,
        out: &mut Vec<Problem>,
        evaluating: &mut Vec<&'a str>,
    ) -> Node {
        let loc = module.loc(expression.span());
        let kind = match expression {
            Expression::StringLiteral(literal) => Kind::Str(literal.value.as_str().to_owned()),
            Expression::NumericLiteral(literal) => Kind::Num(literal.value),
            Expression::BooleanLiteral(literal) => Kind::Bool(literal.value),
            Expression::NullLiteral(_) => Kind::Null,
            Expression::ParenthesizedExpression(inner) => return self.eval(module, &inner.expression, out, evaluating),
            Expression::TSAsExpression(inner) => return self.eval(module, &inner.expression, out, evaluating),
            Expression::TSSatisfiesExpression(inner) => return self.eval(module, &inner.expression, out, evaluating),
            Expression::TSNonNullExpression(inner) => return self.eval(module, &inner.expression, out, evaluating),
            Expression::TSTypeAssertion(inner) => return self.eval(module, &inner.expression, out, evaluating),
            Expression::Identifier(identifier) => {
                let value = self.identifier(module, identifier.name.as_str(), identifier.span, out, evaluating);
                // Point at the use, not the declaration, for type errors later.
                return Node { loc, kind: value.kind };
            }
            Expression::TemplateLiteral(template) => {
                let mut text = String::new();
                let mut valid = true;
                for (index, quasi) in template.quasis.iter().enumerate() {
                    match &quasi.value.cooked {
                        Some(cooked) => text.push_str(cooked.as_str()),
                        None => {
                            module.invalid(quasi.span, out, "invalid escape sequence in a template literal");
                            valid = false;
                        }
                    }
                    if let Some(part) = template.expressions.get(index) {
                        let value = self.eval(module, part, out, evaluating);
                        match stringify(&value.kind) {
                            Some(part) => text.push_str(&part),
                            None if matches!(value.kind, Kind::Invalid) => valid = false,
                            None => {
                                module.invalid(
                                    part.span(),
                                    out,
                                    format!(
                                        "cannot put {} into a template literal; only strings, numbers and booleans",
                                        value.kind.describe()
                                    ),
                                );
                                valid = false;
                            }
                        }
                    }
                }
                if valid { Kind::Str(text) } else { Kind::Invalid }
            }
            Expression::ArrayExpression(array) => {
                let mut items = Vec::new();
                for element in &array.elements {
                    match element {
                        ArrayExpressionElement::SpreadElement(spread) => {
                            let value = self.eval(module, &spread.argument, out, evaluating);
                            match value.kind {
                                Kind::Array(spread_items) => items.extend(spread_items),
                                Kind::Invalid => items.push(value),
                                other => items.push(module.invalid(
                                    spread.span,
                                    out,
                                    format!("cannot spread {} into an array; only arrays", other.describe()),
                                )),
                            }
                        }
                        ArrayExpressionElement::Elision(elision) => {
                            items.push(module.invalid(elision.span, out, "array holes (`[a, , b]`) are not supported"))
                        }
                        _ => match element.as_expression() {
                            Some(item) => items.push(self.eval(module, item, out, evaluating)),
                            None => items.push(module.invalid(element.span(), out, "unsupported array element")),
                        },
                    }
                }
                Kind::Array(items)
            }
            Expression::ObjectExpression(object) => {
                let mut properties = Vec::new();
                for property in &object.properties {
                    match property {
                        ObjectPropertyKind::ObjectProperty(property) => {
                            if property.computed {
                                module.invalid(
                                    property.key.span(),
                                    out,
                                    "computed keys (`[key]: value`) are not supported; write the key out",
                                );
                                continue;
                            }
                            let key = match &property.key {
                                PropertyKey::StaticIdentifier(identifier) => identifier.name.as_str().to_owned(),
                                PropertyKey::StringLiteral(literal) => literal.value.as_str().to_owned(),
                                PropertyKey::NumericLiteral(literal) => number_to_string(literal.value),
                                other => {
                                    module.invalid(other.span(), out, "unsupported object key");
                                    continue;
                                }
                            };
                            let key_loc = module.loc(property.key.span());
                            let value = if property.method || property.kind != PropertyKind::Init {
                                module.invalid(
                                    property.span,
                                    out,
                                    format!("`{key}` is a method or accessor; only plain values are supported"),
                                )
                            } else {
                                self.eval(module, &property.value, out, evaluating)
                            };
                            set_property(&mut properties, Property { key, key_loc, value });
                        }
                        ObjectPropertyKind::SpreadProperty(spread) => {
                            let value = self.eval(module, &spread.argument, out, evaluating);
                            match value.kind {
                                Kind::Object(spread_properties) => {
                                    for property in spread_properties {
                                        set_property(&mut properties, property);
                                    }
                                }
                                Kind::Invalid => {}
                                other => {
                                    module.invalid(
                                        spread.span,
                                        out,
                                        format!("cannot spread {} into an object; only objects", other.describe()),
                                    );
                                }
                            }
                        }
                    }
                }
                Kind::Object(properties)
            }
            Expression::BinaryExpression(binary) if binary.operator == BinaryOperator::Addition => {
                let left = self.eval(module, &binary.left, out, evaluating);
                let right = self.eval(module, &binary.right, out, evaluating);
                match (&left.kind, &right.kind) {
                    (Kind::Invalid, _) | (_, Kind::Invalid) => Kind::Invalid,
                    (Kind::Num(left), Kind::Num(right)) => Kind::Num(left + right),
                    (Kind::Str(_), _) | (_, Kind::Str(_)) => match (stringify(&left.kind), stringify(&right.kind)) {
                        (Some(left), Some(right)) => Kind::Str(left + &right),
                        _ => {
                            return module.invalid(
                                binary.span,
                                out,
                                "`+` joins strings with strings, numbers or booleans only",
                            );
                        }
                    },
                    _ => {
                        return module.invalid(
                            binary.span,
                            out,
                            format!("cannot add {} and {}", left.kind.describe(), right.kind.describe()),
                        );
                    }
                }
            }
            Expression::UnaryExpression(unary) if unary.operator == UnaryOperator::UnaryNegation => {
                match self.eval(module, &unary.argument, out, evaluating).kind {
                    Kind::Num(value) => Kind::Num(-value),
                    Kind::Invalid => Kind::Invalid,
                    other => {
                        return module.invalid(unary.span, out, format!("cannot negate {}", other.describe()));
                    }
                }
            }
            // `process.env.NAME ?? 'fallback'`: the fallback applies when the variable is unset.
            Expression::LogicalExpression(logical) if logical.operator == LogicalOperator::Coalesce => {
                if let Some(name) = env_name(&logical.left) {
                    return match (self.env)(name) {
                        Some(value) => Node { loc, kind: Kind::Str(value) },
                        None => self.eval(module, &logical.right, out, evaluating),
                    };
                }
                let what = describe_unsupported(expression);
                return module.invalid(
                    logical.span,
                    out,
                    format!("cannot evaluate {what} statically (agent files are never executed); {SUPPORTED}"),
                );
            }
            Expression::StaticMemberExpression(member) => {
                let property = member.property.name.as_str();
                return self.member(module, &member.object, property, member.span, out, evaluating);
            }
            Expression::ComputedMemberExpression(member) => match &member.expression {
                Expression::StringLiteral(literal) => {
                    return self.member(module, &member.object, literal.value.as_str(), member.span, out, evaluating);
                }
                _ => {
                    return module.invalid(
                        member.span,
                        out,
                        "computed member access is supported only with a string literal (`obj['key']`)",
                    );
                }
            },
            other => {
                let what = describe_unsupported(other);
                return module.invalid(
                    other.span(),
                    out,
                    format!("cannot evaluate {what} statically (agent files are never executed); {SUPPORTED}"),
                );
            }
        };
        Node { loc, kind }
    }

    /// `object.property`: `process.env.NAME` or a property of a statically known object.
    #[allow(clippy::too_many_arguments)]
    fn member<'a>(
        &mut self,
        module: &Module<'a>,
        object: &'a Expression<'a>,
        property: &str,
        span: Span,
        out: &mut Vec<Problem>,
        evaluating: &mut Vec<&'a str>,
    ) -> Node {
        if object.is_specific_member_access("process", "env") {
            return match (self.env)(property) {
                Some(value) => Node { loc: module.loc(span), kind: Kind::Str(value) },
                None => module.invalid(
                    span,
                    out,
                    format!("environment variable `{property}` is not set (read by `process.env.{property}`)"),
                ),
            };
        }
        let value = self.eval(module, object, out, evaluating);
        match value.kind {
            Kind::Object(properties) => match properties.into_iter().find(|candidate| candidate.key == property) {
                Some(found) => Node { loc: module.loc(span), kind: found.value.kind },
                None => module.invalid(span, out, format!("the object has no property `{property}`")),
            },
            Kind::Invalid => Node { loc: module.loc(span), kind: Kind::Invalid },
            other => module.invalid(span, out, format!("cannot read `{property}` of {}", other.describe())),
        }
    }
}

/// `NAME` when `expression` is `process.env.NAME` or `process.env['NAME']`.
fn env_name<'n>(expression: &'n Expression<'_>) -> Option<&'n str> {
    match expression.without_parentheses() {
        Expression::StaticMemberExpression(member) if member.object.is_specific_member_access("process", "env") => {
            Some(member.property.name.as_str())
        }
        Expression::ComputedMemberExpression(member) if member.object.is_specific_member_access("process", "env") => {
            match &member.expression {
                Expression::StringLiteral(literal) => Some(literal.value.as_str()),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A value's text in string concatenation and template literals.
fn stringify(kind: &Kind) -> Option<String> {
    match kind {
        Kind::Str(text) => Some(text.clone()),
        Kind::Num(value) => Some(number_to_string(*value)),
        Kind::Bool(value) => Some(value.to_string()),
        _ => None,
    }
}

/// Names an expression static evaluation does not support.
fn describe_unsupported(expression: &Expression<'_>) -> String {
    match expression {
        Expression::CallExpression(call) => match call.callee.without_parentheses() {
            Expression::Identifier(callee) => format!("a function call (`{}(…)`)", callee.name.as_str()),
            _ => "a function call".to_owned(),
        },
        Expression::NewExpression(_) => "a `new` expression".to_owned(),
        Expression::ArrowFunctionExpression(_) | Expression::FunctionExpression(_) => "a function".to_owned(),
        Expression::ConditionalExpression(_) => "a conditional (`? :`)".to_owned(),
        Expression::LogicalExpression(_) => "a logical expression (`&&`, `||`, `??`)".to_owned(),
        Expression::BinaryExpression(binary) => format!("the `{}` operator", binary.operator.as_str()),
        Expression::AwaitExpression(_) => "`await`".to_owned(),
        Expression::TaggedTemplateExpression(_) => "a tagged template".to_owned(),
        Expression::ImportExpression(_) => "a dynamic import".to_owned(),
        Expression::ClassExpression(_) => "a class".to_owned(),
        Expression::RegExpLiteral(_) => "a regular expression".to_owned(),
        Expression::BigIntLiteral(_) => "a bigint".to_owned(),
        _ => "this expression".to_owned(),
    }
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
