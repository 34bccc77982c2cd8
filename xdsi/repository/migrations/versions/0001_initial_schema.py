"""Initial schema: patient, study, series, request attributes, instance, instance metadata.

Revision ID: 0001
Revises: -
"""

from alembic import op
import sqlalchemy as sa

# Compared bytewise on PostgreSQL so prefix LIKE and range matches can use the indexes.
TEXT = sa.String().with_variant(sa.String(collation="C"), "postgresql")


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('patient',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', TEXT, nullable=True),
    sa.Column('issuer_of_patient_id', TEXT, nullable=False),
    sa.Column('patient_name', sa.String(), nullable=False),
    sa.Column('birth_date', TEXT, nullable=False),
    sa.Column('sex', TEXT, nullable=False),
    sa.Column('name_alphabetic', TEXT, nullable=False),
    sa.Column('name_family', TEXT, nullable=False),
    sa.Column('name_given', TEXT, nullable=False),
    sa.Column('name_middle', TEXT, nullable=False),
    sa.Column('name_prefix', TEXT, nullable=False),
    sa.Column('name_suffix', TEXT, nullable=False),
    sa.Column('name_ideographic', TEXT, nullable=False),
    sa.Column('name_phonetic', TEXT, nullable=False),
    sa.Column('name_folded', TEXT, nullable=False),
    sa.Column('name_family_soundex', TEXT, nullable=False),
    sa.Column('name_given_soundex', TEXT, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient')),
    sa.UniqueConstraint('patient_id', 'issuer_of_patient_id', name=op.f('uq_patient_patient_id_issuer_of_patient_id'))
    )
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_birth_date'), ['birth_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_patient_name_alphabetic'), ['name_alphabetic'], unique=False)
        batch_op.create_index(batch_op.f('ix_patient_name_family'), ['name_family'], unique=False)
        batch_op.create_index(batch_op.f('ix_patient_name_family_soundex'), ['name_family_soundex'], unique=False)
        batch_op.create_index(batch_op.f('ix_patient_name_folded'), ['name_folded'], unique=False)
        batch_op.create_index(batch_op.f('ix_patient_name_given'), ['name_given'], unique=False)
        batch_op.create_index(batch_op.f('ix_patient_name_given_soundex'), ['name_given_soundex'], unique=False)
        batch_op.create_index(batch_op.f('ix_patient_patient_id'), ['patient_id'], unique=False)

    op.create_table('study',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('study_uid', sa.String(length=64), nullable=False),
    sa.Column('patient_fk', sa.Integer(), nullable=False),
    sa.Column('study_date', TEXT, nullable=False),
    sa.Column('study_time', sa.String(), nullable=False),
    sa.Column('study_time_key', TEXT, nullable=False),
    sa.Column('study_datetime_utc', TEXT, nullable=False),
    sa.Column('timezone_offset', sa.String(), nullable=False),
    sa.Column('accession_number', TEXT, nullable=False),
    sa.Column('referring_physician_name', sa.String(), nullable=False),
    sa.Column('study_id', TEXT, nullable=False),
    sa.Column('study_description', TEXT, nullable=False),
    sa.Column('modalities_in_study', sa.String(), nullable=False),
    sa.Column('sop_classes_in_study', sa.String(), nullable=False),
    sa.Column('number_of_series', sa.Integer(), nullable=False),
    sa.Column('number_of_instances', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('referring_alphabetic', TEXT, nullable=False),
    sa.Column('referring_family', TEXT, nullable=False),
    sa.Column('referring_given', TEXT, nullable=False),
    sa.Column('referring_middle', TEXT, nullable=False),
    sa.Column('referring_prefix', TEXT, nullable=False),
    sa.Column('referring_suffix', TEXT, nullable=False),
    sa.Column('referring_ideographic', TEXT, nullable=False),
    sa.Column('referring_phonetic', TEXT, nullable=False),
    sa.Column('referring_folded', TEXT, nullable=False),
    sa.Column('referring_family_soundex', TEXT, nullable=False),
    sa.Column('referring_given_soundex', TEXT, nullable=False),
    sa.ForeignKeyConstraint(['patient_fk'], ['patient.id'], name=op.f('fk_study_patient_fk_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study')),
    sa.UniqueConstraint('study_uid', name=op.f('uq_study_study_uid'))
    )
    with op.batch_alter_table('study', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_study_accession_number'), ['accession_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_patient_fk'), ['patient_fk'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_referring_alphabetic'), ['referring_alphabetic'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_referring_family'), ['referring_family'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_referring_family_soundex'), ['referring_family_soundex'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_referring_folded'), ['referring_folded'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_referring_given'), ['referring_given'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_referring_given_soundex'), ['referring_given_soundex'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_study_date'), ['study_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_study_datetime_utc'), ['study_datetime_utc'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_study_id'), ['study_id'], unique=False)

    op.create_table('series',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('series_uid', sa.String(length=64), nullable=False),
    sa.Column('study_fk', sa.Integer(), nullable=False),
    sa.Column('modality', TEXT, nullable=False),
    sa.Column('series_number', sa.Integer(), nullable=True),
    sa.Column('series_description', sa.String(), nullable=False),
    sa.Column('performed_start_date', TEXT, nullable=False),
    sa.Column('performed_start_time', sa.String(), nullable=False),
    sa.Column('performed_start_time_key', TEXT, nullable=False),
    sa.Column('number_of_instances', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_fk'], ['study.id'], name=op.f('fk_series_study_fk_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_series')),
    sa.UniqueConstraint('series_uid', name=op.f('uq_series_series_uid'))
    )
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_series_modality'), ['modality'], unique=False)
        batch_op.create_index(batch_op.f('ix_series_performed_start_date'), ['performed_start_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_series_series_number'), ['series_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_series_study_fk'), ['study_fk'], unique=False)

    op.create_table('instance',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sop_instance_uid', sa.String(length=64), nullable=False),
    sa.Column('series_fk', sa.Integer(), nullable=False),
    sa.Column('sop_class_uid', sa.String(length=64), nullable=False),
    sa.Column('instance_number', sa.Integer(), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=True),
    sa.Column('columns', sa.Integer(), nullable=True),
    sa.Column('bits_allocated', sa.Integer(), nullable=True),
    sa.Column('number_of_frames', sa.Integer(), nullable=True),
    sa.Column('specific_character_set', sa.String(), nullable=False),
    sa.Column('transfer_syntax_uid', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('blob_key', sa.String(), nullable=False),
    sa.Column('pixel_data_offset', sa.BigInteger(), nullable=True),
    sa.Column('pixel_data_length', sa.BigInteger(), nullable=True),
    sa.Column('frame_table', sa.LargeBinary(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['series_fk'], ['series.id'], name=op.f('fk_instance_series_fk_series')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance')),
    sa.UniqueConstraint('blob_key', name=op.f('uq_instance_blob_key')),
    sa.UniqueConstraint('sop_instance_uid', name=op.f('uq_instance_sop_instance_uid'))
    )
    with op.batch_alter_table('instance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_instance_number'), ['instance_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_instance_series_fk'), ['series_fk'], unique=False)
        batch_op.create_index(batch_op.f('ix_instance_sop_class_uid'), ['sop_class_uid'], unique=False)

    op.create_table('request_attribute',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('series_fk', sa.Integer(), nullable=False),
    sa.Column('requested_procedure_id', TEXT, nullable=False),
    sa.Column('scheduled_procedure_step_id', TEXT, nullable=False),
    sa.Column('accession_number', TEXT, nullable=False),
    sa.Column('study_uid', sa.String(), nullable=False),
    sa.ForeignKeyConstraint(['series_fk'], ['series.id'], name=op.f('fk_request_attribute_series_fk_series'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_request_attribute'))
    )
    with op.batch_alter_table('request_attribute', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_request_attribute_requested_procedure_id'), ['requested_procedure_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_request_attribute_scheduled_procedure_step_id'), ['scheduled_procedure_step_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_request_attribute_series_fk'), ['series_fk'], unique=False)

    op.create_table('instance_metadata',
    sa.Column('instance_fk', sa.Integer(), nullable=False),
    sa.Column('series_fk', sa.Integer(), nullable=False),
    sa.Column('json', sa.LargeBinary(), nullable=False),
    sa.Column('xml', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['instance_fk'], ['instance.id'], name=op.f('fk_instance_metadata_instance_fk_instance'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['series_fk'], ['series.id'], name=op.f('fk_instance_metadata_series_fk_series')),
    sa.PrimaryKeyConstraint('instance_fk', name=op.f('pk_instance_metadata'))
    )
    with op.batch_alter_table('instance_metadata', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_metadata_series_fk'), ['series_fk'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('instance_metadata', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instance_metadata_series_fk'))

    op.drop_table('instance_metadata')
    with op.batch_alter_table('request_attribute', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_request_attribute_series_fk'))
        batch_op.drop_index(batch_op.f('ix_request_attribute_scheduled_procedure_step_id'))
        batch_op.drop_index(batch_op.f('ix_request_attribute_requested_procedure_id'))

    op.drop_table('request_attribute')
    with op.batch_alter_table('instance', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instance_sop_class_uid'))
        batch_op.drop_index(batch_op.f('ix_instance_series_fk'))
        batch_op.drop_index(batch_op.f('ix_instance_instance_number'))

    op.drop_table('instance')
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_series_study_fk'))
        batch_op.drop_index(batch_op.f('ix_series_series_number'))
        batch_op.drop_index(batch_op.f('ix_series_performed_start_date'))
        batch_op.drop_index(batch_op.f('ix_series_modality'))

    op.drop_table('series')
    with op.batch_alter_table('study', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_study_study_id'))
        batch_op.drop_index(batch_op.f('ix_study_study_datetime_utc'))
        batch_op.drop_index(batch_op.f('ix_study_study_date'))
        batch_op.drop_index(batch_op.f('ix_study_referring_given_soundex'))
        batch_op.drop_index(batch_op.f('ix_study_referring_given'))
        batch_op.drop_index(batch_op.f('ix_study_referring_folded'))
        batch_op.drop_index(batch_op.f('ix_study_referring_family_soundex'))
        batch_op.drop_index(batch_op.f('ix_study_referring_family'))
        batch_op.drop_index(batch_op.f('ix_study_referring_alphabetic'))
        batch_op.drop_index(batch_op.f('ix_study_patient_fk'))
        batch_op.drop_index(batch_op.f('ix_study_accession_number'))

    op.drop_table('study')
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_patient_id'))
        batch_op.drop_index(batch_op.f('ix_patient_name_given_soundex'))
        batch_op.drop_index(batch_op.f('ix_patient_name_given'))
        batch_op.drop_index(batch_op.f('ix_patient_name_folded'))
        batch_op.drop_index(batch_op.f('ix_patient_name_family_soundex'))
        batch_op.drop_index(batch_op.f('ix_patient_name_family'))
        batch_op.drop_index(batch_op.f('ix_patient_name_alphabetic'))
        batch_op.drop_index(batch_op.f('ix_patient_birth_date'))

    op.drop_table('patient')
