"""The pyqtgraph dashboard: one module per view, ``main_window`` assembles them, ``app`` runs or snapshots them.

Qt and pyqtgraph are imported by the view modules themselves, so importing this package costs nothing.
"""
