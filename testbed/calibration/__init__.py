"""The loop between the two worlds: the SimPy model calibrated on the live testbed, and its
predictions held against the live testbed at load levels it was not calibrated on.

  measure.py   the live network measured at open-loop load levels (telemetry, CPU, outcomes)
"""
