"""Storage: tables, engines, migrations, bulk upserts and the SQL that counts service levels."""
