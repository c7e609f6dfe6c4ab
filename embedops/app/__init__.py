"""The app layer: what composes the stages. The pipeline, the demo, index building and opening as
commands need them, pairs generation and mining, training from files, promotion from files, store
status, the generator factory and the example data writers. The CLI calls only this layer and the
registry; nothing below imports it.
"""
