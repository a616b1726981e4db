from secondopinion.services import accounts


def test_patient_registers_and_signs_in(make_patient):
    patient = make_patient(email='alice@example.org')
    actor = accounts.authenticate(email='Alice@Example.org', password='correct horse battery')
    assert actor.user_id == patient.user_id
    assert actor.patient_id is not None
