from types import SimpleNamespace

from django.utils import translation

from accounts.content import localized, localized_value


def test_a_text_in_the_active_language_else_the_base_one_for_objects_and_rows_alike():
    plan = SimpleNamespace(name="Start", name_ru="Старт")
    untranslated = SimpleNamespace(name="Pro", name_ru="")
    row, row_untranslated = {"plan__name": "Start", "plan__name_ru": "Старт"}, {"plan__name": "Pro", "plan__name_ru": ""}
    with translation.override("ru"):
        assert localized(plan, "name") == "Старт" and localized(untranslated, "name") == "Pro"
        assert localized_value(row.get, "plan__name") == "Старт"
        assert localized_value(row_untranslated.get, "plan__name") == "Pro"
    with translation.override("en"):
        assert localized(plan, "name") == "Start"
        assert localized_value(row.get, "plan__name") == "Start"
        assert localized_value(row.get, "plan__name", "ru") == "Старт"  # a list's caller passes the language it read
    with translation.override("de"):  # a language without a column: the base text
        assert localized(plan, "name") == "Start" and localized_value(row.get, "plan__name") == "Start"
