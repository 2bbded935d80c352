"""Linear connector: read-only GraphQL queries for known bugs in the issue tracker."""
