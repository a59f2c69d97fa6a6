"""Pure builders (Knative's reconciler/<kind>/resources): what each kind produces, without I/O.

Given an object, a snapshot of the store and the outcome of the backend calls its reconciler made,
they compute the topic, consumer group, contract entries and status conditions. Tests drive them with
tables (tests/unit/test_reconcile_builders.py); the reconcilers in control/reconcilers/ do the I/O.
"""
