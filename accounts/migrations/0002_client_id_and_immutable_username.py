from django.db import migrations

IMMUTABLE_USERNAME = """
CREATE OR REPLACE FUNCTION accounts_user_username_immutable() RETURNS trigger AS $$
BEGIN
    IF NEW.username IS DISTINCT FROM OLD.username THEN
        RAISE EXCEPTION 'username cannot be changed (user %%)', OLD.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER accounts_user_username_immutable
    BEFORE UPDATE OF username ON accounts_user
    FOR EACH ROW EXECUTE FUNCTION accounts_user_username_immutable();
"""

DROP_IMMUTABLE_USERNAME = """
DROP TRIGGER IF EXISTS accounts_user_username_immutable ON accounts_user;
DROP FUNCTION IF EXISTS accounts_user_username_immutable();
"""


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [
        # Client IDs are the customer primary key; start at 100001 so they look like account numbers.
        migrations.RunSQL(
            "SELECT setval(pg_get_serial_sequence('accounts_customer', 'id'), 100000, true);",
            migrations.RunSQL.noop,
        ),
        migrations.RunSQL(IMMUTABLE_USERNAME.replace("%%", "%"), DROP_IMMUTABLE_USERNAME),
    ]
