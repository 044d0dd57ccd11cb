"""House rules read from the source (tests, migrations and the settings package aside): site paths come from
reverse(), and notice kinds are `notifications.kinds.Kind` constants, never string literals."""
import ast

from django.urls import Resolver404, resolve

from notifications.kinds import Kind
from portal.tests.test_layers import ROOT, root_packages


def app_modules():
    for package in root_packages():
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if "tests" in parts or "migrations" in parts or "settings" in parts or path.name == "conftest.py":
                continue
            yield path


def strings_outside_docstrings(tree: ast.AST):
    """String constants, f-strings by their leading text (a fragment after `{host}` is not a site path)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skipped.add(id(first.value))
        elif isinstance(node, ast.JoinedStr):
            skipped |= {id(part) for part in node.values[1:]}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped:
            yield node


def is_site_path(text: str) -> bool:
    """A path our URLconf serves; the bare root "/" (also a separator) is left alone."""
    if not text.startswith("/") or text == "/":
        return False
    try:
        resolve(text.split("?")[0])
    except Resolver404:
        return False
    return True


def test_no_site_path_is_written_by_hand():
    """`reverse("orders:order_detail", args=[pk])`, not f"/orders/{pk}/": a renamed route must not leave dead links."""
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}"
        for path in app_modules()
        for node in strings_outside_docstrings(ast.parse(path.read_text(), str(path)))
        if is_site_path(node.value)
    ]
    assert not found, "\n".join(found)


def kind_literals(tree: ast.AST):
    kinds = set(Kind.values)
    for node in ast.walk(tree):
        values = []
        if isinstance(node, ast.Call):
            values += [keyword.value for keyword in node.keywords if keyword.arg == "kind"]
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if "notify" in name or "send" in name:
                values += node.args
        elif isinstance(node, ast.Assign) and any(getattr(target, "id", "") == "kind" for target in node.targets):
            values.append(node.value)
        elif isinstance(node, ast.Dict) and node.keys and all(
                isinstance(key, ast.Constant) and key.value in kinds for key in node.keys):
            values += node.keys  # a table keyed by kind (a dict that merely has a "newsletter" field is not)
        for value in values:
            for part in ast.walk(value):
                if isinstance(part, ast.Constant) and part.value in kinds:
                    yield part


def test_notice_kinds_are_constants():
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}"
        for path in app_modules() if path != ROOT / "notifications" / "kinds.py"
        for node in kind_literals(ast.parse(path.read_text(), str(path)))
    ]
    assert not found, "\n".join(found)


def test_the_checks_see_a_literal():
    source = 'notify(customer=c, kind="invoice_issued", link=f"/orders/{pk}/")\nEVENTS = {"low_balance": "balance.low"}\n'
    tree = ast.parse(source)
    assert [node.value for node in kind_literals(tree)] == ["invoice_issued", "low_balance"]
    assert [node.value for node in strings_outside_docstrings(tree) if is_site_path(node.value)] == ["/orders/"]
    assert not is_site_path("/api/v1/servers/") and is_site_path("/billing/invoices/")


def chain_calls(node: ast.AST):
    """The method calls of one chain, outermost first: `a.b().c()` → [c, b]."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        yield node
        node = node.func.value


def joined_row_locks(tree: ast.AST):
    """`select_for_update()` without `of=` in a chain that also joins with `select_related()`: PostgreSQL then
    locks every joined row FOR UPDATE too (an order, a customer, a user), outside the documented lock order."""
    for node in ast.walk(tree):
        calls = list(chain_calls(node))
        names = {call.func.attr for call in calls}
        if "select_related" in names:
            for call in calls:
                if call.func.attr == "select_for_update" and not any(kw.arg == "of" for kw in call.keywords):
                    yield call


def test_a_row_lock_with_joins_names_the_rows_it_locks():
    found = {
        f"{path.relative_to(ROOT)}:{call.lineno}"
        for path in app_modules()
        for call in joined_row_locks(ast.parse(path.read_text(), str(path)))
    }
    assert not found, "\n".join(sorted(found))


def test_the_row_lock_check_sees_a_join():
    tree = ast.parse('A.objects.select_for_update().select_related("b").get(pk=1)\n'
                     'A.objects.select_related("b").select_for_update(of=("self",)).get(pk=1)\n'
                     'A.objects.select_for_update().get(pk=1)\n')
    assert {call.lineno for call in joined_row_locks(tree)} == {1}
