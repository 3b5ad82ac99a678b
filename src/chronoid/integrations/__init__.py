"""chronoid where Python backends keep their IDs: each module is an optional extra.

=====================================  ===============================  ======================
module                                 what                             install
=====================================  ===============================  ======================
:mod:`chronoid.integrations.pydantic`  ``ChronoId`` annotated types     ``chronoid[pydantic]``
:mod:`chronoid.integrations.sqlalchemy`  ``ChronoIdType`` column type   ``chronoid[sqlalchemy]``
:mod:`chronoid.integrations.alembic`   install/remove the SQL functions  ``chronoid[alembic]``
:mod:`chronoid.integrations.django`    ``ChronoIdField``, a migration   ``chronoid[django]``
:mod:`chronoid.integrations.json`      IDs as strings in JSON           (standard library)
:mod:`chronoid.integrations.defaults`  a fork-safe ``default=``         (standard library)
=====================================  ===============================  ======================

Importing a module whose library is missing raises :class:`~chronoid.errors.MissingExtra`
naming the extra to install. Details and examples: ``docs/integrations.md``.
"""
