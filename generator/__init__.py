"""Synthetic pick generator (travel times, detection model, false picks).

Imports only ``catalogs``. Its contents arrive with the generator issue.
"""
